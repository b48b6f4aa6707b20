"""Pools follow Kontrol's registry watch (issue 10.4): a kite that registers joins the pool, and
one that Kontrol drops leaves it, at once rather than at the next refresh (the refresh interval
here is an hour); against a Kontrol without watches the pool keeps polling."""

from __future__ import annotations

import anyio
import pytest
from pool_helpers import OWNER

from kitecore import Query
from kitecore.contracts.storage import make_identity
from kitecore.storage import RegisterValue

pytestmark = pytest.mark.anyio

QUERY = {"username": OWNER, "environment": "production", "name": "math"}
HOUR = 3600.0


async def until(condition, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - the pool's own tasks change its state
            await anyio.sleep(0.01)


def keys(pool) -> set[str]:
    return {c.key for c in pool.candidates}


async def test_arrivals_and_departures_reach_the_pool_at_once(farm, caller, kontrol):
    first = await farm.start()
    async with caller.pool(QUERY, refresh_interval=HOUR) as pool:
        assert keys(pool) == {first.id}
        await until(lambda: pool.watching)
        second = await farm.start()
        await until(lambda: second.id in keys(pool))
        assert {await pool.tell("square", n) for n in range(4)} == {0.0, 1.0, 4.0, 9.0}
        # Kontrol removes a kite (its TTL ran out, or an operator deleted it): it leaves
        (entry,) = await kontrol.storage.get(Query(id=first.id))
        await kontrol.storage.delete(entry.kite)
        await until(lambda: keys(pool) == {second.id})
        assert await pool.tell("square", 5) == 25.0
        assert farm.calls[second.id] >= 1


async def test_kites_written_by_another_kontrol_reach_the_pool(farm, caller, kontrol):
    first = await farm.start()
    async with caller.pool(QUERY, refresh_interval=HOUR) as pool:
        await until(lambda: pool.watching)
        other = make_identity(username=OWNER, environment="production", name="math")
        value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
        await kontrol.storage.upsert(other, value, ttl=600)
        await until(lambda: keys(pool) == {first.id, other.id})
        await kontrol.storage.delete(other)
        await until(lambda: keys(pool) == {first.id})
