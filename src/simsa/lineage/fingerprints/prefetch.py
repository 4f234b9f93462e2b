"""Read ahead while computing: the next few work items are loaded on a background thread while the caller computes
on the current one.

Fingerprinting a large checkpoint alternates reading a unit group's sampled rows (disk-bound; positional reads and
numpy decoding release the GIL) with preparing them (BLAS-bound). Done one after the other, the two costs add up;
overlapped, a cold build approaches the raw sequential read of the files. At most ``depth`` loaded items wait in
memory, so peak memory stays bounded by the largest few groups, whatever the model size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def prefetch(items: Iterable[Item], load: Callable[[Item], Loaded], depth: int = 2) -> Iterator[tuple[Item, Loaded]]:
    """``(item, load(item))`` in the order of ``items``, with up to ``depth`` loads running ahead on one thread.

    ``depth=0`` loads in the caller's thread (no overlap). An exception raised by ``load`` is raised here, at the
    item it belongs to; closing the iterator early cancels what has not started and waits for what has.
    """
    if depth <= 0:
        for item in items:
            yield item, load(item)
        return
    source = iter(items)
    pending: deque[tuple[Item, Future[Loaded]]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsa-prefetch") as pool:
        try:
            for item in source:
                pending.append((item, pool.submit(load, item)))
                if len(pending) > depth:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            for _, future in pending:
                future.cancel()
