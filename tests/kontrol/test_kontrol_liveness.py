"""Heartbeats keep registrations alive; silence lets them expire (short tunable timings)."""

from __future__ import annotations

import anyio
import pytest
from kontrol_helpers import kite_key

from kitecore import GenericError, Query

pytestmark = pytest.mark.anyio


async def test_heartbeat_keeps_kite_past_ttl_and_silence_expires_it(kontrol, make_kite):
    ttl = kontrol.settings.key_ttl
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        await anyio.sleep(ttl * 2.5)  # several TTLs: only heartbeats can keep it
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
    # the kite is gone (no more pings): the entry expires within one TTL
    await anyio.sleep(ttl + 0.3)
    assert await kontrol.storage.get(Query(id=kite.id)) == []


async def test_connected_kite_that_never_pings_expires(kontrol, make_kite):
    ttl = kontrol.settings.key_ttl
    kite = make_kite()
    calls = []

    async def silent_heartbeat(r):
        calls.append(r.args.list()[0])  # accepts the heartbeat request, never pings

    kite.handle("kite.heartbeat", silent_heartbeat)
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        assert calls == [kontrol.settings.heartbeat_interval]
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
        await anyio.sleep(ttl + 0.3)
        assert await kontrol.storage.get(Query(id=kite.id)) == []
        await client.tell("register", {"url": kite.url})  # registering again brings it back
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1


async def test_register_fails_when_kite_refuses_heartbeat(kontrol, make_kite):
    kite = make_kite()

    async def broken_heartbeat(r):
        raise ValueError("no heartbeats here")

    kite.handle("kite.heartbeat", broken_heartbeat)
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with pytest.raises(GenericError, match="no heartbeats here"):
            await client.tell("register", {"url": kite.url})


async def test_kontrol_keeps_its_own_registration(kontrol):
    await anyio.sleep(kontrol.settings.key_ttl * 2)
    (record,) = await kontrol.storage.get(Query(id=kontrol.identity.id))
    assert record.url == kontrol.url
