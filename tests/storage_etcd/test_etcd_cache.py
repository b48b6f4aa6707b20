"""The etcd storage's read cache (issue 10): built from one range read, kept up by the storage's
etcd watch, serving queries only while that watch is open; own writes visible at once; other
storages' writes and lease expiries arrive through the watch; a compaction or a dead member makes
it read etcd again and rebuild, losing and repeating no kite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aetcd
import anyio
import pytest
from kite_storage_etcd import EtcdStorage, parse_etcd_url
from kite_storage_etcd.feed import EtcdFeed
from kite_storage_etcd.testing import EtcdCluster

from kitecore.contracts.storage import LONG_TTL, make_identity
from kitecore.protocol.identity import Query
from kitecore.storage import (
    RESYNC,
    InvalidInputError,
    KiteRecord,
    RegisterValue,
    StorageError,
    StorageEvent,
)

pytestmark = pytest.mark.anyio

VALUE = RegisterValue("http://10.0.0.5:6000/kite", "key-1")
ALICE = Query(username="alice")


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (polling the event loop) until ``condition()`` is true."""
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - state of another task, no event to wait on
            await anyio.sleep(0.01)


async def live_cache(storage: EtcdStorage) -> None:
    """Start the cache (a query does) and wait until it serves."""
    await storage.get(Query(id="warm-up"))
    assert storage.cache is not None
    await until(lambda: storage.cache.live)


def ids(records: list[KiteRecord]) -> list[str]:
    return sorted(record.kite.id for record in records)


def without_watch_events(storage: EtcdStorage) -> None:
    """Stop the storage's watch from applying anything, so that only its own writes reach the
    cache (what the tests below use to tell the two paths apart)."""
    stream = storage._stream
    assert stream is not None

    def drop(event: object, revision: int) -> None:
        return None

    stream._push = drop  # type: ignore[method-assign]


# --- the setting -------------------------------------------------------------------------------


def test_cache_setting_from_url_or_environment() -> None:
    assert parse_etcd_url("etcd://a/kite").cache is True
    off = parse_etcd_url("etcd://a/kite?cache=off")
    assert off.cache is False and "cache=off" in str(off)
    assert parse_etcd_url(str(off)) == off
    assert parse_etcd_url("etcd://a/kite", {"KITE_ETCD_CACHE": "off"}).cache is False
    assert parse_etcd_url("etcd://a/kite?cache=on", {"KITE_ETCD_CACHE": "off"}).cache is True
    with pytest.raises(InvalidInputError, match=r"cache .* must be on or off"):
        parse_etcd_url("etcd://a/kite?cache=maybe")
    with pytest.raises(InvalidInputError, match=r"\$KITE_ETCD_CACHE must be on or off"):
        parse_etcd_url("etcd://a/kite", {"KITE_ETCD_CACHE": "sometimes"})


async def test_cache_off_reads_etcd_for_every_query(etcd_url: str) -> None:
    async with EtcdStorage(etcd_url + "?cache=off") as a, EtcdStorage(etcd_url) as b:
        assert a.cache is None
        await a.get(ALICE)
        kite = make_identity()
        await b.upsert(kite, VALUE, ttl=LONG_TTL)  # another writer: seen at once, no watch
        assert ids(await a.get(Query(id=kite.id))) == [kite.id]
        assert a._stream is None  # no watch was started for queries


# --- own writes, other writers, expiry ---------------------------------------------------------


async def test_own_writes_are_visible_at_once(etcd_url: str) -> None:
    """Read-your-own-writes inside one storage (one Kontrol): with the watch applying nothing,
    upsert, update and delete through this storage still show in its next query, while a write
    through another storage does not (so the answers did come from the cache)."""
    async with EtcdStorage(etcd_url) as a, EtcdStorage(etcd_url) as b:
        await live_cache(a)
        without_watch_events(a)
        kite = make_identity()
        await a.upsert(kite, VALUE, ttl=LONG_TTL)
        assert ids(await a.get(Query(id=kite.id))) == [kite.id]
        assert ids(await a.get(Query(name=kite.name, username="alice"))) == [kite.id]
        assert await a.update(kite, RegisterValue("http://moved/kite", "key-2"), ttl=LONG_TTL)
        (record,) = await a.get(Query(id=kite.id))
        assert (record.url, record.key_id) == ("http://moved/kite", "key-2")
        other = make_identity()
        await b.upsert(other, VALUE, ttl=LONG_TTL)
        assert await a.get(Query(id=other.id)) == []  # only the watch would bring it
        assert ids(await a._read(Query(id=other.id))) == [other.id]
        await a.delete(kite)
        assert await a.get(Query(id=kite.id)) == []
        assert a.cache is not None and a.cache.live


def etcd_calls(storage: EtcdStorage) -> list[str]:
    """From now on, the names of the etcd calls ``storage`` makes (it still makes them)."""
    made: list[str] = []
    endpoints = storage._etcd
    call = endpoints.call

    def counted(what: str, operation: Callable[[aetcd.Client], object]) -> object:
        made.append(what)
        return call(what, operation)  # type: ignore[arg-type]

    endpoints.call = counted  # type: ignore[method-assign, assignment]
    return made


async def test_a_refresh_writes_what_the_cache_shows_and_reads_etcd_only_when_that_is_stale(
    etcd_url: str,
) -> None:
    """``update`` (a heartbeat's refresh) writes over the cached registration in one etcd call,
    conditional on the id key's revision; when another Kontrol changed the kite meanwhile (and
    the watch has not brought it yet) that write is refused, and the refresh reads etcd and
    writes over what is really there, removing the other identity's keys."""
    async with EtcdStorage(etcd_url) as a, EtcdStorage(etcd_url) as b:
        await live_cache(a)
        without_watch_events(a)
        kite = make_identity(version="1.0.0")
        await a.upsert(kite, VALUE, ttl=LONG_TTL)
        made = etcd_calls(a)
        assert await a.update(kite, RegisterValue("http://moved/kite", "key-2"), ttl=LONG_TTL)
        assert made == ["update"]  # no read first
        assert [r.url for r in await a._read(Query(id=kite.id))] == ["http://moved/kite"]

        renamed = make_identity(version="2.0.0", id=kite.id)
        await b.upsert(renamed, VALUE, ttl=LONG_TTL)  # a's cache still shows 1.0.0
        made.clear()
        assert await a.update(kite, RegisterValue("http://back/kite", "key-3"), ttl=LONG_TTL)
        assert made == ["update", "update", "update"]  # refused, read, written
        assert await a._read(Query(version="2.0.0")) == []  # the other identity's keys went
        (record,) = await a._read(Query(id=kite.id))
        assert (record.kite, record.url) == (kite, "http://back/kite")


async def test_own_write_is_not_undone_by_an_older_watch_event(etcd_url: str) -> None:
    """The watch delivering a write after this storage applied a newer one changes nothing."""
    async with EtcdStorage(etcd_url) as a:
        await live_cache(a)
        without_watch_events(a)
        kite = make_identity()
        await a.upsert(kite, VALUE, ttl=LONG_TTL)
        (registered,) = await a.get(Query(id=kite.id))
        cache = a.cache
        assert cache is not None
        put_revision = cache._entries[kite.id].revision
        await a.delete(kite)
        cache.apply_watched(kite.id, put_revision, registered)  # the watch brings the put late
        assert await a.get(Query(id=kite.id)) == []
        newer = RegisterValue("http://newer/kite", "key-3")
        await a.upsert(kite, newer, ttl=LONG_TTL)
        cache.apply_watched(kite.id, put_revision + 1, None)  # ... and the delete
        assert [r.url for r in await a.get(Query(id=kite.id))] == [newer.url]


async def test_writes_of_another_storage_and_expiry_arrive_through_the_watch(
    etcd_url: str,
) -> None:
    async with EtcdStorage(etcd_url) as a, EtcdStorage(etcd_url) as b:
        await live_cache(a)
        stays, silent = make_identity(), make_identity()
        await b.upsert(stays, VALUE, ttl=LONG_TTL)
        await b.upsert(silent, VALUE, ttl=1)  # never refreshed: its lease runs out
        await until(lambda: a.cache is not None and len(a.cache) == 2)
        assert ids(await a.get(ALICE)) == sorted([stays.id, silent.id])
        await until(lambda: a.cache is not None and len(a.cache) == 1)  # etcd deleted it
        assert ids(await a.get(ALICE)) == [stays.id]
        assert await a.get(Query(id=silent.id)) == []
        assert a.cache is not None and a.cache.live  # served from the cache all along


# --- the watch going away ----------------------------------------------------------------------


async def test_compaction_makes_the_cache_rebuild_without_losing_or_repeating_kites(
    etcd_url: str, etcd_server: EtcdCluster
) -> None:
    async with EtcdStorage(etcd_url) as a, EtcdStorage(etcd_url) as b:
        first = [make_identity() for _ in range(5)]
        for kite in first:
            await b.upsert(kite, VALUE, ttl=LONG_TTL)
        await live_cache(a)
        async with a.watch() as feed:
            stream = a._stream
            assert stream is not None and a._stream_task is not None
            a._stream_task.cancel()  # the watch stops (as when its stream drops)
            with pytest.raises(asyncio.CancelledError):
                await a._stream_task
            assert a.cache is not None and not a.cache.live
            # meanwhile: queries read etcd, so another storage's writes show at once
            later = [make_identity() for _ in range(5)]
            for kite in later:
                await b.upsert(kite, VALUE, ttl=LONG_TTL)
            for kite in first[:3]:
                await b.delete(kite)
            await a.upsert(mine := make_identity(), VALUE, ttl=LONG_TTL)
            expected = sorted([k.id for k in first[3:] + later] + [mine.id])
            assert ids(await a.get(ALICE)) == expected
            member = etcd_server.members[0]
            async with aetcd.Client(host="127.0.0.1", port=member.client_port) as raw:
                revision = (await raw.get_prefix(b"/none")).header.revision
                await raw.compact(revision, physical=True)
            a._stream_task = asyncio.get_running_loop().create_task(stream.run())
            await until(lambda: stream.rebuilds == 1 and a.cache is not None and a.cache.live)
            found = await a.get(ALICE)
            assert ids(found) == expected  # none lost, none twice
            assert ids(found) == ids(await a._read(ALICE))
            with anyio.fail_after(10):
                assert (await feed.__anext__()).action == RESYNC  # readers read again too
            # and it follows the watch again
            await b.delete(later[0])
            await until(lambda: a.cache is not None and len(a.cache) == len(expected) - 1)


async def test_cache_follows_etcd_across_the_death_of_its_member(
    etcd_cluster: EtcdCluster,
) -> None:
    """The member the watch reads from dies: queries never fail or come back empty because of
    the cache (etcd is read while the watch is down), and afterwards the cache agrees with etcd."""
    url = etcd_cluster.storage_url("/cache", timeout=3)
    async with EtcdStorage(url) as a, EtcdStorage(url) as b:
        before = [make_identity() for _ in range(3)]
        for kite in before:
            await a.upsert(kite, VALUE, ttl=LONG_TTL)
        await live_cache(a)
        stream = a._stream
        assert stream is not None
        etcd_cluster.members[0].kill()
        added = [make_identity() for _ in range(3)]
        for kite in added:
            await b.upsert(kite, VALUE, ttl=LONG_TTL)  # b fails over too
            found = ids(await a.get(ALICE))  # never an error, never empty
            assert {k.id for k in before} <= set(found)
            if a.cache is not None and not a.cache.live:
                assert kite.id in found  # read from etcd
        await a.delete(before[0])
        expected = sorted(k.id for k in before[1:] + added)
        await until(lambda: stream.reconnects >= 1 and a.cache is not None and a.cache.live)
        await until(lambda: a.cache is not None and len(a.cache) == len(expected))
        assert ids(await a.get(ALICE)) == expected == ids(await a._read(ALICE))


async def test_feed_subscribed_after_the_stream_started_gets_only_later_events(
    etcd_storage: EtcdStorage,
) -> None:
    """A change feed opened on a running watch starts at etcd's revision at that moment."""
    early = make_identity()
    await live_cache(etcd_storage)
    stream = etcd_storage._stream
    assert isinstance(stream, EtcdFeed)
    await etcd_storage.upsert(early, VALUE, ttl=LONG_TTL)
    late = make_identity()
    async with etcd_storage.watch() as feed:
        await etcd_storage.upsert(late, VALUE, ttl=LONG_TTL)
        with anyio.fail_after(10):
            event: StorageEvent = await feed.__anext__()
        assert event.record is not None and event.record.kite == late


async def test_a_broken_watch_ends_its_feeds_and_the_next_query_starts_a_new_one(
    etcd_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with EtcdStorage(etcd_url) as a, EtcdStorage(etcd_url) as b:
        await live_cache(a)
        broken = a._stream
        assert broken is not None

        def bug(event: object, revision: int) -> None:
            raise RuntimeError("a bug in the watch")

        async with a.watch() as feed:
            broken._push = bug  # type: ignore[method-assign]
            await b.upsert(make_identity(), VALUE, ttl=LONG_TTL)
            with anyio.fail_after(10), pytest.raises(StorageError, match="watch broke"):
                await feed.__anext__()
        assert "etcd watch broke" in caplog.text
        assert a.cache is not None and not a.cache.live
        kite = make_identity()
        await b.upsert(kite, VALUE, ttl=LONG_TTL)
        assert ids(await a.get(Query(id=kite.id))) == [kite.id]  # from etcd meanwhile
        await until(lambda: a._stream is not None and a._stream is not broken)
        await until(lambda: a.cache is not None and a.cache.live)
        assert ids(await a.get(ALICE)) == ids(await a._read(ALICE))
