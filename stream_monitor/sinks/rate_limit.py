"""A token bucket: what spaces the requests of one webhook."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one token per request."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def reserve(self) -> float:
        """Take a token and return 0, or return how long to wait before asking again."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
