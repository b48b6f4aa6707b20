"""Pools over real kites registered to a real Kontrol, over real sockets."""

from __future__ import annotations

import statistics

import anyio
import pytest
from pool_helpers import QUERY, wait_until

from kitecore import DisconnectError, GenericError, KiteTimeoutError, Query, SendError
from kitecore.discovery import NoKitesError
from kitecore.plugins import PluginError
from kitecore.pool import AllKitesFailedError

pytestmark = pytest.mark.anyio

SLOW = 0.2  # the injected delay of the slow kites: above a garbage collection of a long test run


async def test_round_robin_spreads_1000_calls_evenly_over_reused_connections(farm, caller):
    kites = [await farm.start() for _ in range(5)]
    async with caller.pool(QUERY, picker="round_robin") as pool:
        for n in range(10):
            assert await pool.tell("square", n) == n * n
        connections = {c.key: c.client.connection for c in pool.candidates}
        for n in range(10, 1000):
            assert await pool.tell("square", n) == n * n
        assert {c.key: c.client.connection for c in pool.candidates} == connections
    assert len(connections) == 5
    counts = [farm.calls[k.id] for k in kites]
    mean = statistics.mean(counts)
    assert sum(counts) == 1000
    assert all(abs(count - mean) <= 1 for count in counts), counts


@pytest.mark.parametrize(
    ("picker", "options"),
    [("fastest", {"interval": 0.5}), ("least_latency", {"seed": 7})],
)
async def test_learning_pickers_prefer_the_kite_without_delay(farm, caller, picker, options):
    slow = [await farm.start(delay=SLOW) for _ in range(4)]
    fast = await farm.start()
    async with caller.pool(QUERY, picker=picker, picker_options=options) as pool:
        # learning: on a loaded machine one early call of the fast kite may be slow too
        for n in range(100):
            assert await pool.tell("square", n) == n * n
        learnt = farm.calls[fast.id]
        for n in range(100, 300):
            assert await pool.tell("square", n) == n * n
    counts = {k.id: farm.calls[k.id] for k in [fast, *slow]}
    assert farm.calls[fast.id] - learnt >= 0.9 * 200, (learnt, counts)


async def test_killing_a_kite_mid_run_loses_no_idempotent_call(farm, caller):
    kites = [await farm.start(work=0.005) for _ in range(5)]
    victim = kites[2]
    results: dict[int, float] = {}
    async with caller.pool(QUERY, picker="round_robin", idempotent=True) as pool:

        async def worker(first: int) -> None:
            for n in range(first, 600, 20):
                results[n] = await pool.tell("square", n)
                if n == 200:
                    await farm.kill(victim)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for first in range(20):
                    group.start_soon(worker, first)
        assert out_of_rotation(pool, victim.id)
    assert results == {n: float(n * n) for n in range(600)}
    assert 0 < farm.calls[victim.id] < 600 / 5
    assert sum(farm.calls.values()) >= 600


async def test_calls_a_shutting_down_kite_refuses_go_to_another_kite(farm, caller):
    leaving = await farm.start()
    staying = await farm.start()
    async with caller.pool(QUERY, picker="round_robin") as pool:  # not idempotent
        for n in range(4):
            assert await pool.tell("square", n) == n * n
        assert farm.calls[leaving.id] == farm.calls[staying.id] == 2
        held = victim_candidate(pool, leaving.id).client

        async def hold_open() -> None:  # a call in flight keeps the leaving kite draining
            with pytest.raises(DisconnectError):
                await held.tell("hang", timeout=30)

        async with anyio.create_task_group() as group:
            group.start_soon(hold_open)
            await wait_until(lambda: farm.calls[leaving.id] == 3)
            group.start_soon(leaving.kite.shutdown, 5.0)
            await wait_until(lambda: leaving.kite.shutting_down)
            for n in range(40):  # half of them would be the leaving kite's turn
                assert await pool.tell("square", n) == n * n
                if n == 0:
                    continue  # its first turn may be the second call
                assert out_of_rotation(pool, leaving.id)
                await anyio.sleep(0.01)  # past the first redials of the leaving kite
            assert held.connected  # it was still draining all along
            group.cancel_scope.cancel()
    assert farm.calls[leaving.id] == 3
    assert farm.calls[staying.id] == 2 + 40


def victim_candidate(pool, kite_id):
    return next(c for c in pool.candidates if c.key == kite_id)


def out_of_rotation(pool, kite_id):
    """Gone from the pool (Kontrol said so), or still listed but out of the rotation."""
    if kite_id not in {c.key for c in pool.candidates}:
        return True
    return pool.is_down(victim_candidate(pool, kite_id))


async def test_non_idempotent_calls_are_never_retried(farm, caller):
    await farm.start()
    await farm.start()
    async with caller.pool(QUERY) as pool:
        # the timeout also covers dialling the kite: long enough that the call reaches it
        with pytest.raises(KiteTimeoutError):
            await pool.tell("hang", timeout=2)
        assert sum(farm.calls.values()) == 1

        # an error the method returns is the caller's, even for idempotent calls
        with pytest.raises(GenericError, match="fails on purpose"):
            await pool.tell("fail", idempotent=True)
        assert sum(farm.calls.values()) == 2

        # idempotent: tried on another kite, within the bounded attempts
        with pytest.raises(AllKitesFailedError, match=r'"hang" failed on 3 attempt\(s\)'):
            await pool.tell("hang", timeout=1, idempotent=True)
        assert sum(farm.calls.values()) == 5


async def test_a_disconnect_of_a_non_idempotent_call_reaches_the_caller(farm, caller):
    only = await farm.start(name="solo")
    async with caller.pool(Query(username="bob", name="solo")) as pool:

        async def kill_once_called() -> None:
            await wait_until(lambda: farm.calls[only.id] > 0)
            await farm.kill(only)

        async with anyio.create_task_group() as group:
            group.start_soon(kill_once_called)
            with pytest.raises(DisconnectError), anyio.fail_after(10):
                await pool.tell("hang", timeout=30)
    assert farm.calls[only.id] == 1


async def test_a_kite_that_comes_back_is_used_again(farm, caller):
    kites = [await farm.start() for _ in range(3)]
    victim = kites[0]
    async with caller.pool(QUERY, picker="round_robin", idempotent=True) as pool:
        for n in range(30):
            await pool.tell("square", n)
        assert farm.calls[victim.id] == 10
        await farm.kill(victim)
        for n in range(30):
            await pool.tell("square", n)
        assert farm.calls[victim.id] == 10

        await farm.revive(victim)
        with anyio.fail_after(10):
            while farm.calls[victim.id] == 10:
                await pool.tell("square", 1)
                await anyio.sleep(0.01)
        before = farm.calls[victim.id]
        for n in range(30):
            await pool.tell("square", n)
        assert farm.calls[victim.id] >= before + 9


async def test_a_new_kite_is_picked_up_by_the_periodic_refresh(farm, caller):
    first = await farm.start()
    async with caller.pool(QUERY, refresh_interval=0.2) as pool:
        await pool.tell("square", 2)
        second = await farm.start()
        with anyio.fail_after(10):
            while not farm.calls[second.id]:
                await pool.tell("square", 2)
                await anyio.sleep(0.01)
    assert farm.calls[first.id] >= 1


# ------------------------------------------------------------ bad input


async def test_an_unknown_picker_name_lists_the_installed_pickers(caller):
    with pytest.raises(PluginError) as info:
        caller.pool(QUERY, picker="fastets")
    assert str(info.value) == (
        "unknown picker 'fastets'; installed pickers: fastest, least_latency, random, round_robin"
    )


async def test_no_matching_kite_is_a_clear_error_not_a_hang(farm, caller):
    await farm.start()
    with anyio.fail_after(10):
        with pytest.raises(NoKitesError, match="no kites found"):
            async with caller.pool(Query(username="bob", name="nothing")):
                pass
        pool = caller.pool("bob/production/nothing")  # lives in the caller's task group
        with pytest.raises(NoKitesError, match="no kites found"):
            await pool.tell("square", 2)
        await pool.aclose()


@pytest.mark.parametrize("kontrol_key_ttl", [60.0])  # Kontrol lists the dead kites still
async def test_every_candidate_dead_is_reported_after_bounded_attempts(farm, caller):
    kites = [await farm.start() for _ in range(3)]
    async with caller.pool(QUERY, idempotent=True) as pool:
        await pool.tell("square", 3)
        for kite in kites:
            await farm.kill(kite)
        with anyio.fail_after(10):
            for idempotent in (True, False, True):
                with pytest.raises(AllKitesFailedError) as info:
                    await pool.tell("square", 3, idempotent=idempotent)
                text = str(info.value)
                assert "is unreachable (3 known)" in text or "failed on 3 attempt(s)" in text, text
    assert sum(farm.calls.values()) == 1


async def test_kites_kontrol_has_forgotten_are_no_kites_found(farm, caller):
    kites = [await farm.start() for _ in range(2)]
    async with caller.pool(QUERY) as pool:
        await pool.tell("square", 3)
        for kite in kites:
            await farm.kill(kite)
        with anyio.fail_after(10):
            while True:
                try:
                    await pool.tell("square", 3)
                except NoKitesError as exc:
                    assert str(exc) == "no kites found matching /bob/production/math"
                    break
                except AllKitesFailedError:  # until Kontrol forgets them (1 s)
                    await anyio.sleep(0.1)
        assert pool.candidates == []


async def test_a_third_party_picker_gets_feedback_after_every_call(farm, caller):
    from test_pickers import CountingPicker

    kites = [await farm.start() for _ in range(2)]
    picker = CountingPicker()
    async with caller.pool(QUERY, picker=picker) as pool:
        assert picker.updates[-1] == 2
        first = pool.live[0]
        assert await pool.tell("square", 5) == 25
        with pytest.raises(GenericError):
            await pool.tell("fail")
    assert [(key, type(error)) for key, _, error in picker.seen] == [
        (first.key, type(None)),
        (first.key, GenericError),
    ]
    assert all(0 < latency < 5 for _, latency, _ in picker.seen)
    assert farm.calls[first.key] == 2 and sum(farm.calls[k.id] for k in kites) == 2


async def test_a_pool_started_by_its_first_call_lives_in_the_kite_and_closes(farm, caller):
    kite = await farm.start()
    pool = caller.pool("bob/production/math", picker="random", picker_options={"seed": 1})
    assert await pool.tell("square", 6) == 36
    assert [c.key for c in pool.live] == [kite.id]
    client = pool.live[0].client
    await pool.aclose()
    assert not client.connected and pool.candidates == []
    with pytest.raises(SendError, match="the pool is closed"):
        await pool.tell("square", 6)
