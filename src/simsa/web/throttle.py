"""Sign-in attempts per client address in a sliding minute, in memory (per worker process).

The account lockout in the store is what stops a password being guessed; this stops one address from hammering
the sign-in form (and the Argon2 hashing behind it) across many accounts.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class AttemptLimiter:
    def __init__(self, per_minute: int, window: float = 60.0, max_clients: int = 100_000) -> None:
        self.per_minute = per_minute
        self.window = window
        self.max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        """Count an attempt from `client`; False once it has made `per_minute` in the last window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) >= self.max_clients:
                self._forget_idle(now)
            times = self._seen.setdefault(client, deque())
            while times and now - times[0] > self.window:
                times.popleft()
            if len(times) >= self.per_minute:
                return False
            times.append(now)
            return True

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._seen.items() if not v or now - v[-1] > self.window]:
            del self._seen[key]
