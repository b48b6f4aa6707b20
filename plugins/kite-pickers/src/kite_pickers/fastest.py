"""The ``fastest`` picker: the kite with the lowest ``kite.ping`` round trip."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import anyio

from kitecore import KiteError
from kitecore.pickers import Candidate, PickerBase, PickerHost, is_failure

__all__ = ["FastestPicker"]

logger = logging.getLogger(__name__)


class FastestPicker(PickerBase):
    """Pings every reachable candidate concurrently, every ``interval`` seconds and as soon
    as new candidates appear, and chooses the lowest round trip (the best of ``samples``
    pings, each bounded by ``timeout``).

    Until a candidate is measured it is not preferred; while none is, candidates are taken in
    turn. A candidate whose call fails (lost, unreachable, silent) is avoided until its next
    successful ping.
    """

    name = "fastest"

    def __init__(self, *, interval: float = 5.0, timeout: float = 2.0, samples: int = 2) -> None:
        if not interval > 0 or not timeout > 0 or samples < 1:
            raise ValueError("fastest needs interval > 0, timeout > 0 and samples >= 1")
        self.interval = interval
        self.timeout = timeout
        self.samples = samples
        #: The last measured round trip of each candidate, in seconds (``inf``: failed).
        self.round_trips: dict[Candidate, float] = {}
        self._turn = 0
        self._unmeasured: anyio.Event | None = None

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        round_trips = self.round_trips
        best = None
        best_time = math.inf
        for candidate in candidates:
            rtt = round_trips.get(candidate, math.inf)
            if rtt < best_time:
                best, best_time = candidate, rtt
        if best is None:
            turn = self._turn
            self._turn = turn + 1
            return candidates[turn % len(candidates)]
        return best

    def observe(self, candidate: Candidate, latency: float, error: BaseException | None) -> None:
        if is_failure(error):
            self.round_trips[candidate] = math.inf

    def update(self, candidates: Sequence[Candidate]) -> None:
        present = set(candidates)
        for gone in [c for c in self.round_trips if c not in present]:
            del self.round_trips[gone]
        if self._unmeasured is not None and any(c not in self.round_trips for c in candidates):
            self._unmeasured.set()

    async def run(self, host: PickerHost) -> None:
        while True:
            self._unmeasured = anyio.Event()
            await self.measure(host)
            with anyio.move_on_after(self.interval):
                await self._unmeasured.wait()

    async def measure(self, host: PickerHost) -> None:
        """Ping every reachable candidate now, concurrently, and record the round trips."""
        candidates = list(host.live)
        async with anyio.create_task_group() as group:
            for candidate in candidates:
                group.start_soon(self._measure_one, host, candidate)
        logger.debug(
            "fastest: round trips %s",
            {c.url: f"{t * 1000:.2f}ms" for c, t in self.round_trips.items()},
        )

    async def _measure_one(self, host: PickerHost, candidate: Candidate) -> None:
        best = math.inf
        for _ in range(self.samples):
            try:
                best = min(best, await host.ping(candidate, self.timeout))
            except KiteError as exc:
                logger.debug("fastest: ping of %r failed: %s", candidate, exc)
                best = math.inf
                break
        if candidate in host.live:
            self.round_trips[candidate] = best
