"""The four pickers and the picker interface, without a network."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import anyio
import pytest
from kite_pickers import FastestPicker, LeastLatencyPicker, RandomPicker, RoundRobinPicker
from kite_pickers import plugin as pickers_plugin
from pool_helpers import wait_until

from kitecore import (
    DisconnectError,
    GenericError,
    KiteIdentity,
    KiteTimeoutError,
    ShuttingDownError,
)
from kitecore.pickers import Candidate, Picker, PickerBase, is_failure
from kitecore.plugins import load_plugins
from kitecore.pool import make_picker


def candidates(count: int) -> list[Candidate]:
    return [
        Candidate(
            KiteIdentity("bob", "production", "math", "1.0.0", "eu", "host", f"id-{n}"),
            f"http://127.0.0.1:{7000 + n}/kite",
            None,  # type: ignore[arg-type]  # pickers never touch the client
        )
        for n in range(count)
    ]


def test_every_picker_fits_the_interface_and_is_registered_by_name():
    registry = load_plugins(names=(), extra_plugins=[pickers_plugin])
    assert sorted(registry.pickers) == ["fastest", "least_latency", "random", "round_robin"]
    for name in registry.pickers:
        picker = make_picker(registry, name)
        assert isinstance(picker, Picker)
        assert picker.name == name


def test_make_picker_refuses_what_is_not_a_picker():
    registry = load_plugins(names=(), extra_plugins=[pickers_plugin])
    with pytest.raises(TypeError, match="is not a picker"):
        make_picker(registry, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="picker_options only apply"):
        make_picker(registry, RoundRobinPicker(), {"seed": 1})
    with pytest.raises(TypeError):
        make_picker(registry, "random", {"no_such_option": 1})
    with pytest.raises(ValueError, match="fastest needs"):
        make_picker(registry, "fastest", {"interval": 0})


def test_failures_are_the_kite_not_answering():
    assert is_failure(DisconnectError("gone"))
    assert is_failure(KiteTimeoutError("slow"))
    assert is_failure(ShuttingDownError())
    assert not is_failure(GenericError("the method failed"))
    assert not is_failure(None)


def test_round_robin_takes_each_in_turn():
    found = candidates(3)
    picker = RoundRobinPicker()
    assert [picker.pick(found).key for _ in range(7)] == [
        "id-0", "id-1", "id-2", "id-0", "id-1", "id-2", "id-0",
    ]  # fmt: skip


def test_random_reaches_every_candidate_and_is_repeatable_with_a_seed():
    found = candidates(4)
    picker, again = RandomPicker(seed=3), RandomPicker(seed=3)
    sequence = [picker.pick(found).key for _ in range(400)]
    assert sequence == [again.pick(found).key for _ in range(400)]
    assert all(80 <= count <= 120 for count in Counter(sequence).values())


def test_least_latency_tries_new_kites_then_exploits_the_fastest():
    found = candidates(3)
    picker = LeastLatencyPicker(explore=0.0)
    latencies = {"id-0": 0.020, "id-1": 0.001, "id-2": 0.030}
    for _ in range(3):  # each unobserved kite is tried once
        chosen = picker.pick(found)
        picker.observe(chosen, latencies[chosen.key], None)
    assert picker.score(found[1]) == pytest.approx(0.001)
    assert {picker.pick(found).key for _ in range(10)} == {"id-1"}

    # the fast kite starts failing: its score rises past the others
    for _ in range(5):
        picker.observe(found[1], 0.001, DisconnectError("gone"))
    assert picker.pick(found).key == "id-0"
    # an error the method returns is an answer, not a failure
    picker.observe(found[0], 0.020, GenericError("bad argument"))
    assert picker.score(found[0]) == pytest.approx(0.020)


def learn(picker: LeastLatencyPicker, candidate: Candidate, latency: float) -> None:
    for _ in range(10):
        picker.observe(candidate, latency, None)


def test_least_latency_keeps_the_best_kite_through_one_pause_but_leaves_a_slower_one():
    found = candidates(2)
    picker = LeastLatencyPicker(explore=0.0)
    learn(picker, found[0], 0.001)
    learn(picker, found[1], 0.050)
    # one call of the best kite caught in a 1 s pause: it stays the best
    picker.observe(found[0], 1.0, None)
    assert picker.score(found[0]) == pytest.approx(0.001 + 0.3 * 0.003)
    assert picker.pick(found) is found[0]
    # it really got slower: a few calls later the other kite is chosen
    picks = []
    for _ in range(10):
        chosen = picker.pick(found)
        picks.append(chosen.key)
        picker.observe(chosen, 0.2 if chosen is found[0] else 0.050, None)
    assert picks[:3] == ["id-0"] * 3 and picks[-3:] == ["id-1"] * 3, picks
    assert picks.count("id-0") <= 6, picks


def test_least_latency_without_an_outlier_bound_follows_every_sample():
    found = candidates(2)
    picker = LeastLatencyPicker(explore=0.0, outlier_ratio=0)
    learn(picker, found[0], 0.001)
    learn(picker, found[1], 0.050)
    picker.observe(found[0], 1.0, None)
    assert picker.score(found[0]) == pytest.approx(0.001 + 0.3 * 0.999)
    assert picker.pick(found) is found[1]
    with pytest.raises(ValueError, match="outlier_ratio"):
        LeastLatencyPicker(outlier_ratio=0.5)


def test_least_latency_starts_its_average_at_the_first_answer():
    found = candidates(2)
    picker = LeastLatencyPicker(explore=0.0, failure_penalty=0.0)
    picker.observe(found[0], 0.0, DisconnectError("could not dial"))  # never sent: 0 s
    assert picker.score(found[0]) == 0.0
    picker.observe(found[0], 0.050, None)
    assert picker.score(found[0]) == pytest.approx(0.050)  # not 0.3 x 50 ms
    picker.observe(found[1], 0.020, None)
    assert picker.pick(found) is found[1]


def test_least_latency_explores_sometimes():
    found = candidates(5)
    picker = LeastLatencyPicker(explore=0.2, seed=1)
    for candidate in found:
        picker.observe(candidate, 0.001 if candidate.key == "id-0" else 0.05, None)
    picks = Counter(picker.pick(found).key for _ in range(1000))
    assert 780 <= picks["id-0"] <= 900  # 80 % exploit + 20 % / 5 explore
    assert all(picks[c.key] > 0 for c in found)


def test_least_latency_forgets_kites_that_left():
    found = candidates(2)
    picker = LeastLatencyPicker(explore=0.0)
    picker.observe(found[0], 0.5, None)
    picker.observe(found[1], 0.001, None)
    picker.update(found[:1])
    picker.update(found)
    assert picker.score(found[1]) is None
    assert picker.pick(found) is found[1]  # back: tried first


class FakeHost:
    def __init__(self, live: list[Candidate], round_trips: dict[str, float]) -> None:
        self.live = live
        self.round_trips = round_trips
        self.pings: Counter[str] = Counter()

    async def ping(self, candidate: Candidate, timeout: float) -> float:
        self.pings[candidate.key] += 1
        rtt = self.round_trips[candidate.key]
        if math.isinf(rtt):
            raise DisconnectError("gone")
        return rtt


@pytest.mark.anyio
async def test_fastest_measures_concurrently_and_picks_the_lowest_round_trip():
    found = candidates(3)
    host = FakeHost(found[:2], {"id-0": 0.02, "id-1": 0.001, "id-2": math.inf})
    picker = FastestPicker(interval=0.05, samples=2)
    assert picker.pick(found).key == "id-0"  # nothing measured yet: in turn
    assert picker.pick(found).key == "id-1"
    async with anyio.create_task_group() as group:
        group.start_soon(picker.run, host)
        await wait_until(lambda: len(picker.round_trips) == 2)
        assert picker.pick(found).key == "id-1"
        # a new candidate is measured at once, not after the interval
        picker.interval = 3600
        await anyio.sleep(0.1)
        host.live = found
        picker.update(found)
        await wait_until(lambda: found[2] in picker.round_trips)
        assert picker.round_trips[found[2]] == math.inf
        group.cancel_scope.cancel()
    assert host.pings["id-0"] >= 2

    # a failed call sends the fastest to the back until it is measured again
    picker.observe(found[1], 0.001, KiteTimeoutError("slow"))
    assert picker.pick(found).key == "id-0"
    picker.observe(found[0], 0.001, GenericError("method error"))
    assert picker.pick(found).key == "id-0"


class CountingPicker(PickerBase):
    """A third-party picker: always the first candidate, remembering the feedback."""

    name = "first"

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, Any]] = []
        self.updates: list[int] = []

    def pick(self, candidates):  # type: ignore[no-untyped-def]
        return candidates[0]

    def observe(self, candidate, latency, error):  # type: ignore[no-untyped-def]
        self.seen.append((candidate.key, latency, error))

    def update(self, candidates):  # type: ignore[no-untyped-def]
        self.updates.append(len(candidates))
