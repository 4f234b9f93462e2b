"""Expensive public reads — those that go through the whole audit log — bounded so a crowd cannot exhaust the
server: verifying runs one at a time, and requests that arrive while one runs wait for it and share its result
(`coalesced`); exports and trails run at most `WHOLE_LOG_READS` at a time per worker (`whole_log`).

Results are never kept for later requests: a verification shown is always one that finished after the request
arrived, so an edit behind the log cannot hide behind a cached "OK".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")


class Coalesced:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished_at = float("-inf")
        self._value: Any = None

    def run(self, compute: Callable[[], T]) -> T:
        arrived = time.monotonic()
        with self._lock:
            if self._finished_at >= arrived:  # a run finished while this request waited for it: share it
                return self._value
            value = compute()
            self._value, self._finished_at = value, time.monotonic()
            return value


_GUARD = threading.Lock()
WHOLE_LOG_READS = 2
_WHOLE_LOG = threading.BoundedSemaphore(WHOLE_LOG_READS)


def whole_log(compute: Callable[[], T]) -> T:
    """Run a read of the whole log (export, trail) once one of the few slots for them is free."""
    with _WHOLE_LOG:
        return compute()


def coalesced(request: Request, name: str, compute: Callable[[], T]) -> T:
    """Run `compute` under the app's gate called `name`."""
    state = request.app.state
    with _GUARD:
        gates = getattr(state, "coalesced", None)
        if gates is None:
            gates = state.coalesced = {}
        gate = gates.setdefault(name, Coalesced())
    return gate.run(compute)
