"""What only the etcd storage has: URLs, key layout, leases, the id index, faults, asyncio only."""

from __future__ import annotations

import asyncio
import random
import time

import aetcd
import anyio
import pytest
from kite_storage_etcd import (
    AsyncioRequiredError,
    EtcdStorage,
    EtcdUnavailableError,
    lease_ttl,
    parse_etcd_url,
)
from kite_storage_etcd.layout import KeyLayout, StoredKite
from kite_storage_etcd.leases import WINDOW, WindowLeases
from kite_storage_etcd.testing import EtcdCluster, free_port

from kitecore.contracts.storage import LONG_TTL, make_identity
from kitecore.plugins import load_plugins
from kitecore.protocol.identity import Query
from kitecore.storage import (
    IdConflictError,
    InvalidInputError,
    KiteRecord,
    RegisterValue,
    StorageError,
)

VALUE = RegisterValue("http://10.0.0.5:6000/kite", "key-1")


def raw_client(etcd_server: EtcdCluster) -> aetcd.Client:
    member = etcd_server.members[0]
    return aetcd.Client(host="127.0.0.1", port=member.client_port, timeout=5)


async def keys_under(etcd_server: EtcdCluster, prefix: str) -> dict[bytes, int]:
    """Every key under ``prefix`` and the lease it is on, read with a separate client."""
    async with raw_client(etcd_server) as client:
        found = await client.get_prefix(prefix.encode() + b"/")
    return {kv.key: kv.lease for kv in found.kvs}


# --- URLs and layout (no server) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoints", "prefix", "timeout"),
    [
        ("etcd://127.0.0.1:2379/kite", [("127.0.0.1", 2379)], "/kite", 5.0),
        ("etcd://etcd1", [("etcd1", 2379)], "/kite", 5.0),
        ("etcd://a:1,b:2,c/reg/prod/", [("a", 1), ("b", 2), ("c", 2379)], "/reg/prod", 5.0),
        (
            "etcd://[::1]:2380,[fe80::1]/x?timeout=0.5",
            [("::1", 2380), ("fe80::1", 2379)],
            "/x",
            0.5,
        ),
    ],
)
def test_parse_url(url, endpoints, prefix, timeout):
    parsed = parse_etcd_url(url)
    assert list(parsed.endpoints) == endpoints
    assert parsed.prefix == prefix
    assert parsed.timeout == timeout
    assert parse_etcd_url(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://", "not an etcd storage URL"),
        ("etcd:///kite", "no etcd endpoint"),
        ("etcd://a:99999/kite", "bad etcd port"),
        ("etcd://a:b/kite", "bad etcd port"),
        ("etcd://a:1,,b/kite", "empty etcd host"),
        ("etcd://u@a/kite", "has no password"),
        ("etcd://a/kite?timeout=0", "timeout"),
        ("etcd://a/kite?timeout=soon", "timeout"),
        ("etcd://a/kite?tls=1", "unknown etcd URL option"),
        ("etcd://a/x//y", "empty segment"),
    ],
)
def test_bad_url_is_refused(url, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_etcd_url(url)


def test_lease_ttl_rounds_up_to_whole_seconds():
    assert [lease_ttl(t) for t in (0.2, 1, 1.01, 90)] == [1, 1, 2, 90]


def test_query_plans_use_the_narrowest_prefix():
    layout = KeyLayout("/p")
    assert layout.plan(Query(id="x", name="n")).key == b"/p/ids/x"
    assert not layout.plan(Query(id="x")).prefix
    assert layout.plan(Query(username="u", environment="e", name="n", version="1")).key == (
        b"/p/kites/u/e/n/"
    )
    assert layout.plan(Query(username="u", name="n")).key == b"/p/kites/u/"  # a gap stops it
    assert layout.plan(Query(name="n", region="r")).key == b"/p/names/n/"
    assert layout.plan(Query(region="r")).key == b"/p/kites/"


def test_stored_record_round_trip_and_broken_data():
    record = StoredKite(KiteRecord(make_identity(), "http://a/kite", "k"), 90)
    assert StoredKite.decode(record.encode()) == record
    for broken in (b"{", b"[]", b'{"kite": {}, "url": 1, "key_id": "k"}'):
        with pytest.raises(StorageError):
            StoredKite.decode(broken)


def test_plugin_registers_the_etcd_scheme():
    registry = load_plugins(names=["etcd"], strict=True)
    storage = registry.storage_for_url("etcd://127.0.0.1:2379/kite")
    assert isinstance(storage, EtcdStorage)
    assert storage.url.prefix == "/kite"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error(etcd_url):
    with pytest.raises(AsyncioRequiredError, match="needs asyncio"):
        EtcdStorage.from_url(etcd_url)
    storage = EtcdStorage(etcd_url)  # made outside a loop, then used under trio
    with pytest.raises(AsyncioRequiredError, match="KITE_ANYIO_BACKEND=asyncio"):
        await storage.get(Query(username="alice"))


# --- against the server ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_lease_holds_all_keys_and_they_expire_together(etcd_storage, etcd_server):
    kite = make_identity()
    await etcd_storage.upsert(kite, VALUE, ttl=1)
    keys = await keys_under(etcd_server, etcd_storage.url.prefix)
    layout = etcd_storage.layout
    assert set(keys) == {*layout.record_keys(kite), layout.owner_key(kite.id)}
    assert len(set(keys.values())) == 1 and 0 not in keys.values()
    await anyio.sleep(2.5)
    assert await keys_under(etcd_server, etcd_storage.url.prefix) == {}


@pytest.mark.anyio
async def test_id_index_follows_reregistration_and_old_keys_go(etcd_storage, etcd_server):
    old = make_identity(version="1.0.0")
    new = make_identity(version="2.0.0", id=old.id)
    await etcd_storage.upsert(old, VALUE, ttl=LONG_TTL)
    await etcd_storage.upsert(new, RegisterValue("http://new/kite", "k2"), ttl=LONG_TTL)
    keys = await keys_under(etcd_server, etcd_storage.url.prefix)
    layout = etcd_storage.layout
    assert set(keys) == {*layout.record_keys(new), layout.owner_key(new.id)}  # old keys deleted
    assert await etcd_storage.get(Query(id=old.id)) == [KiteRecord(new, "http://new/kite", "k2")]
    assert await etcd_storage.get(Query(username="alice", version="1.0.0")) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_kites_of_one_window_share_a_lease_and_a_refresh_moves_to_a_newer_one(
    etcd_storage, etcd_server
):
    clock = FakeClock()
    etcd_storage._leases = WindowLeases(etcd_storage._grant, clock=clock)
    prefix = etcd_storage.url.prefix
    first, second = make_identity(), make_identity()
    await asyncio.gather(
        etcd_storage.upsert(first, VALUE, ttl=LONG_TTL),
        etcd_storage.upsert(second, VALUE, ttl=LONG_TTL),
    )
    (lease,) = set((await keys_under(etcd_server, prefix)).values())  # one grant for both
    async with raw_client(etcd_server) as client:
        granted = (await client.get_lease_info(lease)).grantedTTL
    assert granted == lease_ttl(LONG_TTL) + WINDOW  # the window's margin on top of the TTL
    clock.now += WINDOW  # the next window
    moved = RegisterValue("http://moved/kite", "key-1")
    assert await etcd_storage.update(first, moved, ttl=LONG_TTL)
    keys = await keys_under(etcd_server, prefix)
    layout = etcd_storage.layout
    (new_lease,) = {keys[k] for k in (*layout.record_keys(first), layout.owner_key(first.id))}
    assert new_lease != lease
    assert {keys[k] for k in layout.record_keys(second)} == {lease}  # not moved, not revoked
    assert [r.url for r in await etcd_storage.get(Query(id=first.id))] == ["http://moved/kite"]


@pytest.mark.anyio
async def test_a_kite_that_stops_refreshing_expires_though_its_lease_mate_refreshes(
    etcd_storage,
):
    """Two kites share a window's lease; one keeps refreshing (update), the other stops: the
    silent one must still disappear within its TTL (+ the window, + etcd's expiry check)."""
    silent, alive = make_identity(), make_identity()
    await asyncio.gather(
        etcd_storage.upsert(silent, VALUE, ttl=1),
        etcd_storage.upsert(alive, VALUE, ttl=1),
    )
    started = time.monotonic()
    while time.monotonic() - started < 4.0:
        await anyio.sleep(0.4)
        assert await etcd_storage.update(alive, VALUE, ttl=1)
    assert await etcd_storage.get(Query(id=silent.id)) == []
    assert [r.kite for r in await etcd_storage.get(Query(id=alive.id))] == [alive]
    assert await etcd_storage.update(silent, VALUE, ttl=1) is False


@pytest.mark.anyio
async def test_refresh_racing_expiry_returns_false_then_upsert_restores(
    etcd_storage, etcd_server, monkeypatch
):
    """The lease runs out between update's read and its write: the registration is not
    lost, because update says False and the caller (HeartbeatTracker) upserts."""
    kite = make_identity()
    await etcd_storage.upsert(kite, VALUE, ttl=LONG_TTL)
    (lease,) = set((await keys_under(etcd_server, etcd_storage.url.prefix)).values())
    real_call = etcd_storage._etcd.call
    calls = []

    async def expire_just_before_the_write(what, operation):
        calls.append(what)
        if calls == ["update", "update"]:  # the read is done; the write comes
            async with raw_client(etcd_server) as client:
                await client.revoke_lease(lease)
        return await real_call(what, operation)

    monkeypatch.setattr(etcd_storage._etcd, "call", expire_just_before_the_write)
    assert await etcd_storage.update(kite, VALUE, ttl=LONG_TTL) is False
    monkeypatch.setattr(etcd_storage._etcd, "call", real_call)
    await etcd_storage.upsert(kite, VALUE, ttl=LONG_TTL)
    assert [r.kite for r in await etcd_storage.get(Query(id=kite.id))] == [kite]


@pytest.mark.anyio
async def test_heartbeats_racing_expiry_never_lose_a_registration(etcd_storage):
    """Many kites refresh (update, else upsert) at random moments around their 1 s expiry;
    right after each refresh the kite must be found."""
    random.seed(7)
    kites = [make_identity() for _ in range(30)]
    lost = []

    async def heartbeat(kite, delays):
        await etcd_storage.upsert(kite, VALUE, ttl=1)
        for delay in delays:
            await anyio.sleep(delay)
            if not await etcd_storage.update(kite, VALUE, ttl=1):
                await etcd_storage.upsert(kite, VALUE, ttl=1)
            if not await etcd_storage.get(Query(id=kite.id)):
                lost.append((kite.id, delay))

    async with anyio.create_task_group() as tg:
        for kite in kites:
            tg.start_soon(heartbeat, kite, [random.uniform(0.6, 2.2) for _ in range(2)])
    assert lost == []


@pytest.mark.anyio
async def test_broken_record_is_skipped_not_fatal(etcd_storage, etcd_server):
    good = make_identity()
    await etcd_storage.upsert(good, VALUE, ttl=LONG_TTL)
    async with raw_client(etcd_server) as client:
        await client.put(etcd_storage.url.prefix.encode() + b"/kites/alice/x/y/z", b"not json")
    assert [r.kite for r in await etcd_storage.get(Query(username="alice"))] == [good]


@pytest.mark.anyio
async def test_unreachable_etcd_fails_fast_with_storage_error():
    storage = EtcdStorage(f"etcd://127.0.0.1:{free_port()}/kite?timeout=1")
    async with storage:
        for call in (
            storage.get(Query(username="alice")),
            storage.upsert(make_identity(), VALUE, ttl=LONG_TTL),
            storage.get_key_by_id("k"),
        ):
            started = time.monotonic()
            with pytest.raises(EtcdUnavailableError, match="did not answer"):
                await call
            assert time.monotonic() - started < 2.0


@pytest.mark.anyio
async def test_a_member_without_quorum_times_out_as_unavailable(etcd_cluster):
    """A member that lost its quorum holds a read until the call's deadline, and then either
    the client sees DEADLINE_EXCEEDED or the member answers Go's "context deadline exceeded"
    (gRPC code UNKNOWN) first, a race: both are the same timeout, never another error."""
    others = etcd_cluster.members[1:]  # the first one survives, alone
    for member in others:
        member.kill()
    # every member named, as Kontrol does: an attempt on the survivor then ends at its gRPC
    # deadline (1 s), before the storage's own bound on the attempt
    url = etcd_cluster.storage_url(f"/t-{random.getrandbits(32):x}", timeout=2, cache="off")
    async with EtcdStorage(url) as storage:
        for _ in range(8):
            with pytest.raises(EtcdUnavailableError, match="did not answer"):
                await storage.get(Query(username="alice"))
        for member in others:
            member.start()
        etcd_cluster.wait_healthy()
        kite = make_identity()
        await storage.upsert(kite, VALUE, ttl=LONG_TTL)
        assert [r.kite for r in await storage.get(Query(id=kite.id))] == [kite]


@pytest.mark.anyio
async def test_dead_endpoint_is_skipped(etcd_server):
    dead = f"127.0.0.1:{free_port()}"
    url = f"etcd://{dead},{etcd_server.endpoints}/t-{random.getrandbits(32):x}?timeout=3"
    async with EtcdStorage(url) as storage:
        kite = make_identity()
        started = time.monotonic()
        await storage.upsert(kite, VALUE, ttl=LONG_TTL)
        assert [r.kite for r in await storage.get(Query(id=kite.id))] == [kite]
        assert time.monotonic() - started < 2.0


@pytest.mark.anyio
async def test_closed_storage_refuses_calls(etcd_url):
    storage = EtcdStorage(etcd_url)
    await storage.aclose()
    with pytest.raises(StorageError, match="closed"):
        await storage.get(Query(username="alice"))


@pytest.mark.anyio
async def test_concurrent_registrations_share_transactions_each_with_its_own_outcome(
    etcd_storage, monkeypatch
):
    """Registrations arriving while a transaction is in flight go together in the next one,
    each in a nested transaction: its own id check, its own error."""
    taken = [make_identity(username="bob") for _ in range(5)]
    for kite in taken:
        await etcd_storage.upsert(kite, VALUE, ttl=LONG_TTL)
    real_call = etcd_storage._etcd.call
    upserts = []

    async def count(what, operation):
        upserts.append(what)
        return await real_call(what, operation)

    monkeypatch.setattr(etcd_storage._etcd, "call", count)
    fresh = [make_identity() for _ in range(30)]
    again = make_identity()  # the same id five times: never twice in one transaction
    thieves = [make_identity(username="alice", id=kite.id) for kite in taken]
    writes = [(kite, VALUE) for kite in fresh]
    writes += [(again, RegisterValue(f"http://again-{i}/kite", "k")) for i in range(5)]
    writes += [(kite, VALUE) for kite in thieves]
    outcomes = await asyncio.gather(
        *(etcd_storage.upsert(kite, value, ttl=LONG_TTL) for kite, value in writes),
        return_exceptions=True,
    )
    assert outcomes[:35] == [None] * 35
    assert all(isinstance(o, IdConflictError) and "bob" in str(o) for o in outcomes[35:])
    assert len(upserts) < len(writes) // 4  # batched
    found = await etcd_storage.get(Query(username="alice"))
    assert {r.kite.id for r in found} == {k.id for k in fresh} | {again.id}
    (record,) = [r for r in found if r.kite.id == again.id]
    assert record.url.startswith("http://again-")
    assert {r.kite.username for r in await etcd_storage.get(Query(id=taken[0].id))} == {"bob"}
