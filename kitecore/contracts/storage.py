"""The contract every Kontrol storage backend must pass (see :mod:`kitecore.storage`).

Use it from a backend's test module by subclassing :class:`StorageContract` and providing a
``storage`` fixture that yields a fresh, empty storage (and closes it afterwards)::

    import pytest
    from kitecore.contracts.storage import StorageContract

    @pytest.fixture
    def anyio_backend():
        return "asyncio"          # asyncio-only drivers; memory runs on both

    class TestEtcdStorage(StorageContract):
        short_ttl = 2.0           # etcd leases are whole seconds
        expiry_slack = 1.5

        @pytest.fixture
        async def storage(self):
            async with await open_etcd_storage(...) as storage:
                yield storage

Expiry is tested with real short TTLs (``short_ttl`` seconds, plus ``expiry_slack`` of waiting),
because server-side TTLs (etcd leases, database clocks) cannot be driven by an injected clock.
Key-pair tests use fake PEM texts: a storage stores keys, it never parses them.
"""

from __future__ import annotations

import uuid

import anyio
import pytest

from kitecore.protocol.identity import FIELDS, KiteIdentity, Query
from kitecore.storage import (
    DEREGISTER,
    REGISTER,
    RESYNC,
    ChangeFeed,
    IdConflictError,
    InvalidInputError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyPairRecord,
    KiteRecord,
    RegisterValue,
    Storage,
    StorageError,
    StorageEvent,
)

__all__ = ["LONG_TTL", "StorageContract", "fake_key_pair", "make_identity"]

LONG_TTL = 60.0


def make_identity(**fields: str) -> KiteIdentity:
    """A valid identity with a fresh id; ``fields`` override the defaults."""
    values = {
        "username": "alice",
        "environment": "production",
        "name": "math",
        "version": "1.0.0",
        "region": "eu",
        "hostname": "host1",
        "id": str(uuid.uuid4()),
    }
    values.update(fields)
    return KiteIdentity(**values)


def fake_key_pair(key_id: str | None = None) -> KeyPairRecord:
    """A key pair record with unique fake PEM texts."""
    tag = uuid.uuid4().hex
    return KeyPairRecord(
        id=key_id or str(uuid.uuid4()),
        public=f"-----BEGIN PUBLIC KEY-----\n{tag}\n-----END PUBLIC KEY-----",
        private=f"-----BEGIN RSA PRIVATE KEY-----\n{tag}\n-----END RSA PRIVATE KEY-----",
    )


def _value(url: str = "http://10.0.0.5:6000/kite", key_id: str = "key-1") -> RegisterValue:
    return RegisterValue(url, key_id)


def _ids(records: list[KiteRecord]) -> set[str]:
    return {record.kite.id for record in records}


class StorageContract:
    """Behaviour shared by every :class:`~kitecore.storage.Storage` backend.

    Subclasses provide the ``storage`` fixture; they may tune ``short_ttl`` and
    ``expiry_slack`` (seconds) and ``concurrent_writers``; ``feed_timeout`` bounds the wait for
    one change-feed event (an expiry may take ``short_ttl + expiry_slack`` more).
    """

    pytestmark = pytest.mark.anyio

    short_ttl: float = 0.3
    expiry_slack: float = 0.4
    concurrent_writers: int = 200
    feed_timeout: float = 10.0

    # --- register and query ----------------------------------------------------------------

    async def test_upsert_then_get_returns_record(self, storage: Storage) -> None:
        kite = make_identity()
        await storage.upsert(kite, _value(key_id="k-9"), ttl=LONG_TTL)
        assert await storage.get(kite.query()) == [
            KiteRecord(kite, "http://10.0.0.5:6000/kite", "k-9")
        ]

    @pytest.mark.parametrize("field", FIELDS)
    async def test_query_by_each_single_field(self, storage: Storage, field: str) -> None:
        wanted = make_identity(
            username="bob",
            environment="staging",
            name="square",
            version="2.0.0",
            region="us",
            hostname="host2",
        )
        other = make_identity()
        for kite in (wanted, other):
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        query = Query(**{field: getattr(wanted, field)})
        assert _ids(await storage.get(query)) == {wanted.id}

    async def test_fields_are_anded_and_gaps_allowed(self, storage: Storage) -> None:
        a = make_identity(environment="production", name="math")
        b = make_identity(environment="staging", name="math")
        c = make_identity(environment="production", name="square")
        for kite in (a, b, c):
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        # no username, a gap before name: Postgres semantics
        assert _ids(await storage.get(Query(environment="production", name="math"))) == {a.id}
        assert _ids(await storage.get(Query(username="alice", name="math"))) == {a.id, b.id}
        assert _ids(await storage.get(Query(username="alice"))) == {a.id, b.id, c.id}
        assert _ids(await storage.get(Query(region="eu", hostname="host1"))) == {a.id, b.id, c.id}

    async def test_id_only_lookup(self, storage: Storage) -> None:
        kites = [make_identity() for _ in range(3)]
        for kite in kites:
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        records = await storage.get(Query(id=kites[1].id))
        assert [r.kite for r in records] == [kites[1]]

    async def test_no_match_gives_empty_list(self, storage: Storage) -> None:
        await storage.upsert(make_identity(), _value(), ttl=LONG_TTL)
        assert await storage.get(Query(username="nobody")) == []
        assert await storage.get(Query(id=str(uuid.uuid4()))) == []
        assert await storage.get(Query(username="alice", name="nothing")) == []

    async def test_all_empty_query_is_refused(self, storage: Storage) -> None:
        await storage.upsert(make_identity(), _value(), ttl=LONG_TTL)
        with pytest.raises(InvalidInputError, match="all query fields are empty"):
            await storage.get(Query())

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("1.1.0", {"1.1.0"}),
            ("1.1", {"1.1.0"}),  # compared as versions
            ("~> 1.1", {"1.1.0", "1.3.9", "1.4.0"}),
            (">= 1.0, < 1.4", {"1.0.0", "1.1.0", "1.3.9"}),
            (">= 1.5.5", {"2.0.0"}),
            ("< 1.0", set()),
        ],
    )
    async def test_version_queries(self, storage: Storage, spec: str, expected: set[str]) -> None:
        for version in ("1.0.0", "1.1.0", "1.3.9", "1.4.0", "2.0.0"):
            await storage.upsert(make_identity(version=version), _value(), ttl=LONG_TTL)
        found = await storage.get(Query(username="alice", name="math", version=spec))
        assert {r.kite.version for r in found} == expected

    async def test_constraint_with_other_fields(self, storage: Storage) -> None:
        a = make_identity(version="1.2.0", region="eu")
        b = make_identity(version="1.2.0", region="us")
        for kite in (a, b):
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        found = await storage.get(Query(username="alice", version="~> 1.1", region="us"))
        assert _ids(found) == {b.id}

    @pytest.mark.parametrize("query", [Query(version=">= banana"), Query(username="a/b")])
    async def test_bad_query_is_refused(self, storage: Storage, query: Query) -> None:
        with pytest.raises(InvalidInputError):
            await storage.get(query)

    async def test_reregister_with_new_url_replaces(self, storage: Storage) -> None:
        kite = make_identity()
        await storage.upsert(kite, _value("http://old:1/kite"), ttl=LONG_TTL)
        await storage.upsert(kite, _value("http://new:2/kite", key_id="k-2"), ttl=LONG_TTL)
        assert await storage.get(Query(id=kite.id)) == [
            KiteRecord(kite, "http://new:2/kite", "k-2")
        ]

    async def test_reregister_same_id_with_new_fields_replaces(self, storage: Storage) -> None:
        old = make_identity(version="1.0.0")
        new = make_identity(version="1.1.0", id=old.id)
        await storage.upsert(old, _value(), ttl=LONG_TTL)
        await storage.upsert(new, _value(), ttl=LONG_TTL)
        assert [r.kite for r in await storage.get(Query(username="alice"))] == [new]
        assert await storage.get(Query(version="1.0.0")) == []

    async def test_update_changes_url(self, storage: Storage) -> None:
        kite = make_identity()
        await storage.upsert(kite, _value("http://a:1/kite"), ttl=LONG_TTL)
        assert await storage.update(kite, _value("http://b:2/kite"), ttl=LONG_TTL) is True
        (record,) = await storage.get(Query(id=kite.id))
        assert record.url == "http://b:2/kite"

    async def test_update_with_new_fields_replaces_the_old_identity(self, storage: Storage) -> None:
        old = make_identity(version="1.0.0")
        new = make_identity(version="1.1.0", id=old.id)
        await storage.upsert(old, _value("http://a:1/kite"), ttl=LONG_TTL)
        assert await storage.update(new, _value("http://b:2/kite"), ttl=LONG_TTL) is True
        assert await storage.get(Query(id=old.id)) == [KiteRecord(new, "http://b:2/kite", "key-1")]
        assert await storage.get(Query(version="1.0.0")) == []
        assert [r.kite for r in await storage.get(Query(version="1.1.0"))] == [new]

    async def test_update_of_unknown_kite_stores_nothing(self, storage: Storage) -> None:
        kite = make_identity()
        assert await storage.update(kite, _value(), ttl=LONG_TTL) is False
        assert await storage.get(Query(id=kite.id)) == []

    async def test_delete(self, storage: Storage) -> None:
        kite, other = make_identity(), make_identity()
        for k in (kite, other):
            await storage.upsert(k, _value(), ttl=LONG_TTL)
        await storage.delete(kite)
        await storage.delete(kite)  # absent: no error
        assert _ids(await storage.get(Query(username="alice"))) == {other.id}

    async def test_id_of_another_user_cannot_be_taken(self, storage: Storage) -> None:
        victim = make_identity(username="alice")
        thief = make_identity(username="mallory", id=victim.id)
        await storage.upsert(victim, _value("http://alice/kite"), ttl=LONG_TTL)
        with pytest.raises(IdConflictError):
            await storage.upsert(thief, _value("http://evil/kite"), ttl=LONG_TTL)
        assert await storage.update(thief, _value("http://evil/kite"), ttl=LONG_TTL) is False
        await storage.delete(thief)
        assert [r.url for r in await storage.get(Query(id=victim.id))] == ["http://alice/kite"]

    # --- TTL ---------------------------------------------------------------------------------

    async def test_concurrent_upserts_each_get_their_own_outcome(self, storage: Storage) -> None:
        """Upserts at once (which a storage may write together) of fresh kites, one id five
        times, and ids of another user's live kites: each succeeds or fails on its own."""
        taken = [make_identity(username="bob") for _ in range(5)]
        for kite in taken:
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        fresh = [make_identity() for _ in range(30)]
        again = make_identity()
        writes = [(kite, _value()) for kite in fresh]
        writes += [(again, _value(f"http://again-{i}/kite")) for i in range(5)]
        writes += [(make_identity(username="alice", id=kite.id), _value()) for kite in taken]
        outcomes: list[BaseException | None] = [None] * len(writes)

        async def write(index: int, kite: KiteIdentity, value: RegisterValue) -> None:
            try:
                await storage.upsert(kite, value, ttl=LONG_TTL)
            except IdConflictError as exc:
                outcomes[index] = exc

        async with anyio.create_task_group() as tg:
            for index, (kite, value) in enumerate(writes):
                tg.start_soon(write, index, kite, value)
        assert outcomes[:35] == [None] * 35
        assert all(isinstance(o, IdConflictError) for o in outcomes[35:])
        found = await storage.get(Query(username="alice"))
        assert _ids(found) == {k.id for k in fresh} | {again.id}
        assert next(r.url for r in found if r.kite.id == again.id).startswith("http://again-")
        assert {r.kite.username for r in await storage.get(Query(id=taken[0].id))} == {"bob"}

    async def test_entry_expires_after_ttl(self, storage: Storage) -> None:
        short, long = make_identity(), make_identity()
        await storage.upsert(short, _value(), ttl=self.short_ttl)
        await storage.upsert(long, _value(), ttl=LONG_TTL)
        assert _ids(await storage.get(Query(username="alice"))) == {short.id, long.id}
        await anyio.sleep(self.short_ttl + self.expiry_slack)
        assert _ids(await storage.get(Query(username="alice"))) == {long.id}
        assert await storage.get(Query(id=short.id)) == []
        assert await storage.update(short, _value(), ttl=LONG_TTL) is False

    async def test_update_keeps_entry_alive(self, storage: Storage) -> None:
        kite = make_identity()
        await storage.upsert(kite, _value(), ttl=self.short_ttl)
        for _ in range(3):
            await anyio.sleep(self.short_ttl * 0.5)
            assert await storage.update(kite, _value(), ttl=self.short_ttl) is True
        # 1.5 TTLs after the upsert, it is still there thanks to the updates
        assert _ids(await storage.get(Query(id=kite.id))) == {kite.id}
        await anyio.sleep(self.short_ttl + self.expiry_slack)
        assert await storage.get(Query(id=kite.id)) == []

    async def test_expired_id_can_be_taken_by_another_user(self, storage: Storage) -> None:
        old = make_identity(username="alice")
        new = make_identity(username="bob", id=old.id)
        await storage.upsert(old, _value(), ttl=self.short_ttl)
        await anyio.sleep(self.short_ttl + self.expiry_slack)
        await storage.upsert(new, _value(), ttl=LONG_TTL)
        assert [r.kite for r in await storage.get(Query(id=old.id))] == [new]

    # --- bad input ---------------------------------------------------------------------------

    @pytest.mark.parametrize("field", FIELDS)
    @pytest.mark.parametrize("bad", ["", "a/b"])
    async def test_bad_kite_field_is_refused(self, storage: Storage, field: str, bad: str) -> None:
        kite = make_identity(**{field: bad})
        with pytest.raises(InvalidInputError, match=field):
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
        assert await storage.get(Query(username="alice")) == []

    @pytest.mark.parametrize(
        ("value", "ttl"),
        [(RegisterValue("", "k"), LONG_TTL), (RegisterValue("http://a/kite", ""), LONG_TTL)]
        + [(RegisterValue("http://a/kite", "k"), ttl) for ttl in (0, -1.0)],
    )
    async def test_bad_value_or_ttl_is_refused(
        self, storage: Storage, value: RegisterValue, ttl: float
    ) -> None:
        kite = make_identity()
        with pytest.raises(InvalidInputError):
            await storage.upsert(kite, value, ttl=ttl)
        assert await storage.get(Query(id=kite.id)) == []

    # --- concurrency -------------------------------------------------------------------------

    async def test_concurrent_writers(self, storage: Storage) -> None:
        kites = [make_identity(name=f"svc{i % 7}") for i in range(self.concurrent_writers)]
        shared = make_identity(name="shared")

        async def write(kite: KiteIdentity) -> None:
            await storage.upsert(kite, _value(), ttl=LONG_TTL)
            await storage.upsert(shared, _value(f"http://{kite.id}/kite"), ttl=LONG_TTL)
            assert await storage.update(kite, _value("http://updated/kite"), ttl=LONG_TTL)

        async with anyio.create_task_group() as tg:
            for kite in kites:
                tg.start_soon(write, kite)
        found = await storage.get(Query(username="alice"))
        assert _ids(found) == {k.id for k in kites} | {shared.id}
        assert {r.url for r in found if r.kite.id != shared.id} == {"http://updated/kite"}
        (shared_record,) = await storage.get(Query(id=shared.id))
        assert shared_record.url in {f"http://{k.id}/kite" for k in kites}
        assert len(await storage.get(Query(username="alice", name="svc3"))) == len(
            [k for k in kites if k.name == "svc3"]
        )

    # --- key pairs ---------------------------------------------------------------------------

    async def test_key_pair_lookups(self, storage: Storage) -> None:
        pair = fake_key_pair()
        await storage.add_key(pair)
        assert await storage.get_key_by_id(pair.id) == pair
        assert await storage.get_key_by_public(pair.public) == pair
        assert await storage.get_key_by_public("\n" + pair.public + "\n") == pair
        assert await storage.is_valid(pair.public) is True

    async def test_unknown_key_pair(self, storage: Storage) -> None:
        with pytest.raises(KeyNotFoundError, match="no key pair found"):
            await storage.get_key_by_id(str(uuid.uuid4()))
        with pytest.raises(KeyNotFoundError):
            await storage.get_key_by_public(fake_key_pair().public)
        with pytest.raises(KeyNotFoundError):
            await storage.delete_key(str(uuid.uuid4()))
        assert await storage.is_valid(fake_key_pair().public) is False

    @pytest.mark.parametrize("by", ["id", "public"])
    async def test_delete_key_is_soft(self, storage: Storage, by: str) -> None:
        retired, current = fake_key_pair(), fake_key_pair()
        await storage.add_key(retired)
        await storage.add_key(current)
        await storage.delete_key(retired.id if by == "id" else retired.public)
        await storage.delete_key(retired.id)  # twice: no-op
        with pytest.raises(KeyDeletedError, match="key pair is removed") as info:
            await storage.get_key_by_id(retired.id)
        assert info.value.record.public == retired.public
        assert info.value.record.private == retired.private
        assert info.value.record.retired
        with pytest.raises(KeyDeletedError):
            await storage.get_key_by_public(retired.public)
        assert await storage.is_valid(retired.public) is False
        assert await storage.is_valid(current.public) is True
        assert await storage.get_key_by_id(current.id) == current

    async def test_add_key_again(self, storage: Storage) -> None:
        pair = fake_key_pair()
        await storage.add_key(pair)
        await storage.add_key(pair)  # idempotent
        with pytest.raises(InvalidInputError):
            await storage.add_key(fake_key_pair(pair.id))  # same id, another key
        await storage.delete_key(pair.id)
        await storage.add_key(pair)  # a retired pair stays retired
        with pytest.raises(KeyDeletedError):
            await storage.get_key_by_id(pair.id)

    @pytest.mark.parametrize("pair", [KeyPairRecord("", "pub"), KeyPairRecord("id", "  ")])
    async def test_bad_key_pair_is_refused(self, storage: Storage, pair: KeyPairRecord) -> None:
        with pytest.raises(InvalidInputError):
            await storage.add_key(pair)

    # --- change feed -------------------------------------------------------------------------

    async def _expect(
        self, feed: ChangeFeed, ids: set[str], *expected: tuple[str, KiteIdentity]
    ) -> list[StorageEvent]:
        """Read the feed until ``expected`` arrived, ignoring kites outside ``ids``; any other
        event of those kites (or a RESYNC) fails the test."""
        got: list[StorageEvent] = []
        with anyio.fail_after(self.feed_timeout + self.short_ttl + self.expiry_slack):
            while len(got) < len(expected):
                event = await feed.__anext__()
                assert event.action != RESYNC, "the feed lost events"
                assert event.record is not None
                if event.record.kite.id in ids:
                    got.append(event)
        assert [(e.action, e.record.kite) for e in got if e.record] == list(expected)
        return got

    async def test_watch_register_refresh_and_delete(self, storage: Storage) -> None:
        kite, sentinel = make_identity(), make_identity()
        ids = {kite.id, sentinel.id}
        async with storage.watch() as feed:
            await storage.upsert(kite, _value("http://a/kite"), ttl=LONG_TTL)
            (event,) = await self._expect(feed, ids, (REGISTER, kite))
            assert event.record is not None and event.record.url == "http://a/kite"
            # heartbeats and re-registration of a live kite are no news
            assert await storage.update(kite, _value("http://a/kite"), ttl=LONG_TTL)
            await storage.upsert(kite, _value("http://b/kite"), ttl=LONG_TTL)
            await storage.delete(kite)
            await storage.delete(kite)  # deleting twice: one event
            await storage.upsert(sentinel, _value(), ttl=LONG_TTL)
            await self._expect(feed, ids, (DEREGISTER, kite), (REGISTER, sentinel))

    async def test_watch_sees_expiry(self, storage: Storage) -> None:
        kite = make_identity()
        async with storage.watch() as feed:
            await storage.upsert(kite, _value(), ttl=self.short_ttl)
            await self._expect(feed, {kite.id}, (REGISTER, kite), (DEREGISTER, kite))
            await storage.upsert(kite, _value(), ttl=LONG_TTL)  # back after expiry: news again
            await self._expect(feed, {kite.id}, (REGISTER, kite))

    async def test_watch_identity_change_is_deregister_then_register(
        self, storage: Storage
    ) -> None:
        old = make_identity(version="1.0.0")
        new = make_identity(version="2.0.0", id=old.id)
        async with storage.watch() as feed:
            await storage.upsert(old, _value(), ttl=LONG_TTL)
            await storage.upsert(new, _value(), ttl=LONG_TTL)
            await self._expect(feed, {old.id}, (REGISTER, old), (DEREGISTER, old), (REGISTER, new))

    async def test_watch_refused_write_is_no_event(self, storage: Storage) -> None:
        victim = make_identity(username="alice")
        thief = make_identity(username="bob", id=victim.id)
        sentinel = make_identity()
        ids = {victim.id, sentinel.id}
        async with storage.watch() as feed:
            await storage.upsert(victim, _value(), ttl=LONG_TTL)
            with pytest.raises(IdConflictError):
                await storage.upsert(thief, _value(), ttl=LONG_TTL)
            await storage.delete(thief)  # not bob's: nothing happens
            await storage.upsert(sentinel, _value(), ttl=LONG_TTL)
            await self._expect(feed, ids, (REGISTER, victim), (REGISTER, sentinel))

    async def test_watch_many_writers_in_order_per_kite(self, storage: Storage) -> None:
        kites = [make_identity() for _ in range(20)]
        ids = {k.id for k in kites}
        async with storage.watch() as feed:

            async def cycle(kite: KiteIdentity) -> None:
                for _ in range(2):
                    await storage.upsert(kite, _value(), ttl=LONG_TTL)
                    await storage.delete(kite)

            async with anyio.create_task_group() as group:
                for kite in kites:
                    group.start_soon(cycle, kite)
            seen: dict[str, list[str]] = {k.id: [] for k in kites}
            with anyio.fail_after(self.feed_timeout):
                while sum(len(v) for v in seen.values()) < 4 * len(kites):
                    event = await feed.__anext__()
                    assert event.action != RESYNC and event.record is not None
                    if event.record.kite.id in ids:
                        seen[event.record.kite.id].append(event.action)
        expected = [REGISTER, DEREGISTER, REGISTER, DEREGISTER]
        assert all(actions == expected for actions in seen.values()), seen

    async def test_watch_ends_when_storage_closes(self, storage: Storage) -> None:
        async with storage.watch() as feed:
            await storage.aclose()
            with anyio.fail_after(self.feed_timeout), pytest.raises(StorageError):
                async for _ in feed:
                    pass
