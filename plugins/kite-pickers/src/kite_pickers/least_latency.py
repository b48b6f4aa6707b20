"""The ``least_latency`` picker: learns from the pool's feedback which kite answers fastest."""

from __future__ import annotations

import random
from collections.abc import Sequence

from kitecore.pickers import Candidate, PickerBase, is_failure

__all__ = ["LeastLatencyPicker"]


class _Stats:
    __slots__ = ("answered", "failures", "latency")

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.failures = 0.0
        #: False until a call was answered: until then ``latency`` is a failed call's
        self.answered = False


class LeastLatencyPicker(PickerBase):
    """Chooses the candidate with the lowest score, an exponentially weighted moving average
    (weight ``alpha``) of its call latency plus ``failure_penalty`` seconds times the moving
    average of its failures (lost, unreachable or silent; an error the method returns counts
    as an answer). Candidates never observed are tried first; with probability ``explore`` a
    call goes to a random candidate, so a kite that got faster is noticed. ``seed`` makes the
    exploration repeatable.

    One sample moves the average as if it were at most ``outlier_ratio`` times the average
    (0: no bound). A single pause of the best kite (a garbage collection, a lost packet) then
    costs it little, where an unbounded sample could send calls elsewhere until exploration
    happened to try it again; a kite that really got slower is still left after a few calls,
    since each of them multiplies its average by up to ``1 + alpha * (outlier_ratio - 1)``
    (1.9 with the defaults).
    """

    name = "least_latency"

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        explore: float = 0.05,
        failure_penalty: float = 1.0,
        outlier_ratio: float = 4.0,
        seed: int | None = None,
    ) -> None:
        if not 0 < alpha <= 1 or not 0 <= explore <= 1 or failure_penalty < 0:
            raise ValueError(
                "least_latency needs 0 < alpha <= 1, 0 <= explore <= 1, failure_penalty >= 0"
            )
        if not (outlier_ratio == 0 or outlier_ratio >= 1):
            raise ValueError("least_latency needs outlier_ratio >= 1, or 0 for no bound")
        self.alpha = alpha
        self.explore = explore
        self.failure_penalty = failure_penalty
        self.outlier_ratio = outlier_ratio
        self._random = random.Random(seed)
        self._stats: dict[Candidate, _Stats] = {}

    def score(self, candidate: Candidate) -> float | None:
        """The candidate's score in seconds (lower is better); ``None`` if never observed."""
        stats = self._stats.get(candidate)
        if stats is None:
            return None
        return stats.latency + self.failure_penalty * stats.failures

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        if self.explore and self._random.random() < self.explore:
            return candidates[self._random.randrange(len(candidates))]
        stats = self._stats
        penalty = self.failure_penalty
        best = candidates[0]
        best_score = None
        for candidate in candidates:
            entry = stats.get(candidate)
            if entry is None:
                return candidate
            score = entry.latency + penalty * entry.failures
            if best_score is None or score < best_score:
                best, best_score = candidate, score
        return best

    def observe(self, candidate: Candidate, latency: float, error: BaseException | None) -> None:
        alpha = self.alpha
        stats = self._stats.get(candidate)
        if stats is None:
            stats = self._stats[candidate] = _Stats(latency)
        failed = is_failure(error)
        stats.failures += alpha * ((1.0 if failed else 0.0) - stats.failures)
        if failed:
            return
        if not stats.answered:  # the first answer replaces a failed call's latency
            stats.answered = True
            stats.latency = latency
            return
        ceiling = self.outlier_ratio * stats.latency
        if ceiling and latency > ceiling:
            latency = ceiling
        stats.latency += alpha * (latency - stats.latency)

    def update(self, candidates: Sequence[Candidate]) -> None:
        # a kite that left and came back starts afresh (and is tried first)
        present = set(candidates)
        for gone in [c for c in self._stats if c not in present]:
            del self._stats[gone]
