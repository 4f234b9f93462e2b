"""Rate limiting shared by every HTTP client of a run: the judge's chat client and lm-eval's API models."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A token bucket shared by all threads of a client (in its GCRA form: each caller reserves the next free slot).

    `rate` tokens per second, at most `burst` at once; `acquire` sleeps outside the lock, so waiting callers queue in
    arrival order without holding each other up.
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.burst = max(1, burst)
        self._tat = 0.0  # theoretical arrival time of the next request
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def reserve(self) -> float:
        """Take the next free slot; the seconds to wait before using it (for callers that wait their own way)."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            start = max(now, tat - (self.burst - 1) * self.interval)
            self._tat = tat + self.interval
        return start - now

    def acquire(self) -> None:
        pause = self.reserve()
        if pause > 0:
            self._sleep(pause)

    async def acquire_async(self) -> None:
        pause = self.reserve()
        if pause > 0:
            await asyncio.sleep(pause)
