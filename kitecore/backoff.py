"""Exponential backoff with jitter (the shape of Go's cenkalti/backoff, protocol.md §7.3)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Successive waits: ``initial``, then * ``multiplier`` each time, capped at ``maximum``.

    Each wait is drawn uniformly from ``interval * (1 ± randomization)``. ``reset()`` after a
    success starts again from ``initial``. Defaults are Kite's reconnect backoff.
    """

    initial: float = 0.5
    multiplier: float = 1.5
    randomization: float = 0.5
    maximum: float = 60.0
    _interval: float = 0.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.multiplier < 1 or not 0 <= self.randomization < 1:
            raise ValueError("backoff needs initial > 0, multiplier >= 1, 0 <= randomization < 1")
        self._interval = self.initial

    def reset(self) -> None:
        self._interval = self.initial

    def next(self) -> float:
        """The next wait in seconds."""
        interval = self._interval
        self._interval = min(self.maximum, interval * self.multiplier)
        delta = self.randomization * interval
        return random.uniform(interval - delta, interval + delta)

    def upper_bound(self, attempts: int) -> float:
        """The longest total wait ``attempts`` calls to :meth:`next` can add up to."""
        total, interval = 0.0, self.initial
        for _ in range(attempts):
            total += interval * (1 + self.randomization)
            interval = min(self.maximum, interval * self.multiplier)
        return total
