"""Per-tenant request rates: a token bucket per tenant, in this process's memory.

Each tenant may make ``rate`` requests per second on average, in bursts of up to ``burst``;
beyond that a request is refused at once with 429 and a ``Retry-After`` saying when the
next one will be admitted, so one tenant's flood cannot take the server from the others.
The buckets are per process (with ``--workers N`` each worker admits ``rate``)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBuckets:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Admit one request of ``key``: None, or the seconds until one would be admitted."""
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        """A ``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(seconds)))
