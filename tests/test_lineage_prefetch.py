"""The read-ahead behind fingerprinting: same results in the same order, overlap, bounded look-ahead, errors where
they belong, and nothing left running when the consumer stops early."""

from __future__ import annotations

import threading
import time

import pytest

from simsa.lineage.fingerprints.prefetch import prefetch


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_results_come_in_order_whatever_the_depth(depth: int) -> None:
    assert list(prefetch(range(7), lambda i: i * i, depth)) == [(i, i * i) for i in range(7)]


def test_loads_overlap_the_consumers_work() -> None:
    def slow(i: int) -> int:
        time.sleep(0.05)
        return i

    started = time.perf_counter()
    for _ in prefetch(range(8), slow, depth=2):
        time.sleep(0.05)  # the caller's compute
    overlapped = time.perf_counter() - started
    started = time.perf_counter()
    for _ in prefetch(range(8), slow, depth=0):
        time.sleep(0.05)
    serial = time.perf_counter() - started
    assert overlapped < 0.8 * serial


def test_no_more_than_depth_loads_run_ahead() -> None:
    loaded: list[int] = []
    lock = threading.Lock()

    def load(i: int) -> int:
        with lock:
            loaded.append(i)
        return i

    seen = []
    for item, _ in prefetch(range(10), load, depth=2):
        time.sleep(0.02)
        with lock:
            seen.append(len(loaded) - item - 1)  # loads started beyond the one being consumed
    assert max(seen) <= 2


def test_a_failed_load_raises_at_its_own_item() -> None:
    def load(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 is unreadable")
        return i

    got = []
    with pytest.raises(ValueError, match="item 3"):
        for item, _ in prefetch(range(6), load, depth=2):
            got.append(item)
    assert got == [0, 1, 2]


def test_stopping_early_cancels_the_rest() -> None:
    loaded: list[int] = []
    gen = prefetch(range(100), lambda i: loaded.append(i) or i, depth=3)
    assert next(gen) == (0, 0)
    gen.close()
    time.sleep(0.05)
    assert len(loaded) <= 5
