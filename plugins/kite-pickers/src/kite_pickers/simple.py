"""The pickers that do not learn: ``random`` and ``round_robin``."""

from __future__ import annotations

import random
from collections.abc import Sequence

from kitecore.pickers import Candidate, PickerBase

__all__ = ["RandomPicker", "RoundRobinPicker"]


class RandomPicker(PickerBase):
    """Chooses uniformly at random. ``seed`` makes the choices repeatable."""

    name = "random"

    def __init__(self, *, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        return candidates[self._random.randrange(len(candidates))]


class RoundRobinPicker(PickerBase):
    """Takes the candidates in turn (in the pool's order, which survives refreshes), so
    sequential calls spread evenly."""

    name = "round_robin"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        turn = self._turn
        self._turn = turn + 1
        return candidates[turn % len(candidates)]
