"""A unit's numbers must not depend on where it runs. On a CPU, torch splits a matrix product's sums over its
threads, and the order of a float sum changes its last digits: a unit therefore runs its torch work on exactly the
number of CPUs it asks for, in this process as on a Ray worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with torch on `n` threads (restored after; nothing to do where torch is not installed)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
