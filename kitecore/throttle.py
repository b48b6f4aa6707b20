"""A token bucket for per-method throttling (Go's juju/ratelimit semantics)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``capacity`` tokens, one more every ``fill_interval`` seconds, never above capacity.

    The bucket starts full. :meth:`take` removes a token if one is there.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "fill_interval")

    def __init__(
        self,
        fill_interval: float,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fill_interval <= 0:
            raise ValueError("fill_interval must be positive")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.fill_interval = fill_interval
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._stamp = clock()

    def take(self) -> bool:
        """Take one token; False when the bucket is empty."""
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        self._tokens = min(self.capacity, self._tokens + elapsed / self.fill_interval)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def available(self) -> int:
        """Whole tokens available now."""
        elapsed = self._clock() - self._stamp
        return int(min(self.capacity, self._tokens + elapsed / self.fill_interval))
