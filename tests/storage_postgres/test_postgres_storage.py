"""What the PostgreSQL storage adds to the contract: migrations, expiry and the cleaner, faults."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable

import anyio
import asyncpg
import pytest
from kite_storage_postgres import (
    MIGRATIONS,
    AsyncioRequiredError,
    PostgresAuthenticationError,
    PostgresOptions,
    PostgresStorage,
    PostgresUnavailableError,
)
from kite_storage_postgres.testing import TemporaryPostgres, free_port

from kitecore.contracts.storage import LONG_TTL, fake_key_pair, make_identity
from kitecore.plugins import load_plugins
from kitecore.protocol.identity import Query
from kitecore.storage import RegisterValue

pytestmark = pytest.mark.anyio

MakeURL = Callable[..., str]
VALUE = RegisterValue("http://10.0.0.5:6000/kite", "key-1")


async def fetch(postgres: TemporaryPostgres, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(postgres.url(), timeout=10)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


# --- migrations ----------------------------------------------------------------------------


async def test_many_kontrols_migrate_one_schema_at_once(postgres, make_url: MakeURL):
    url = make_url(pool_min_size=1, pool_max_size=2)
    storages = [PostgresStorage.from_url(url) for _ in range(6)]
    try:
        async with anyio.create_task_group() as tg:
            for storage in storages:
                tg.start_soon(storage.connect)
    finally:
        for storage in storages:
            await storage.aclose()
    schema = url.split("schema=")[1]
    rows = await fetch(
        postgres, f'SELECT version, name FROM "{schema}".schema_migrations ORDER BY version'
    )
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    # a later start has nothing to do, and the data survives it
    async with PostgresStorage.from_url(url) as again:
        kite = make_identity()
        await again.upsert(kite, VALUE, ttl=LONG_TTL)
    async with PostgresStorage.from_url(url) as third:
        assert len(await third.get(Query(id=kite.id))) == 1


async def test_a_role_without_create_privilege_uses_a_migrated_schema(postgres, make_url: MakeURL):
    url = make_url()
    async with PostgresStorage.from_url(url) as owner:
        await owner.connect()
        schema = owner.options.schema
    role = f"r_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(postgres.url(), timeout=10)
    try:
        await connection.execute(
            f"""
            CREATE ROLE {role} LOGIN PASSWORD 'dml-only';
            GRANT USAGE ON SCHEMA "{schema}" TO {role};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role};
            """
        )
    finally:
        await connection.close()
    dml_url = f"postgres://{role}:dml-only@127.0.0.1:{postgres.port}/kite?schema={schema}"
    async with PostgresStorage.from_url(dml_url) as storage:
        kite = make_identity()
        await storage.upsert(kite, VALUE, ttl=LONG_TTL)
        assert [r.kite for r in await storage.get(Query(id=kite.id))] == [kite]


async def test_key_pairs_cannot_be_hard_deleted(postgres, pg_storage: PostgresStorage):
    pair = fake_key_pair()
    await pg_storage.add_key(pair)
    schema = pg_storage.options.schema
    with pytest.raises(asyncpg.RaiseError, match="never deleted"):
        await fetch(postgres, f'DELETE FROM "{schema}".key WHERE id = $1', pair.id)
    assert await pg_storage.get_key_by_id(pair.id) == pair


# --- expiry ----------------------------------------------------------------------------------


async def test_expired_rows_are_hidden_before_the_cleaner_runs(postgres, make_url: MakeURL):
    async with PostgresStorage.from_url(make_url(cleanup_interval=0)) as storage:
        kite = make_identity()
        await storage.upsert(kite, VALUE, ttl=0.2)
        await anyio.sleep(0.4)
        schema = storage.options.schema
        count = f'SELECT count(*) AS n FROM "{schema}".kite'
        assert (await fetch(postgres, count))[0]["n"] == 1  # still stored
        assert await storage.get(Query(id=kite.id)) == []  # never returned
        assert await storage.get(Query(username="alice")) == []
        assert await storage.purge_expired() == 1
        assert (await fetch(postgres, count))[0]["n"] == 0


async def test_cleaner_purges_in_the_background(postgres, make_url: MakeURL):
    async with PostgresStorage.from_url(make_url(cleanup_interval=0.1)) as storage:
        live = make_identity()
        await storage.upsert(live, VALUE, ttl=LONG_TTL)
        for _ in range(30):
            await storage.upsert(make_identity(), VALUE, ttl=0.1)
        schema = storage.options.schema
        count = f'SELECT count(*) AS n FROM "{schema}".kite'
        for _ in range(50):
            if (await fetch(postgres, count))[0]["n"] == 1:
                break
            await anyio.sleep(0.1)
        assert (await fetch(postgres, count))[0]["n"] == 1
        assert [r.kite for r in await storage.get(Query(username="alice"))] == [live]


async def test_heartbeat_racing_its_own_expiry_never_loses_the_registration(
    make_url: MakeURL,
):
    """Kontrol's heartbeat write is "update, else upsert". Each round the entry is left to
    expire (or nearly), while a cleaner purges non-stop; once the heartbeat's write returns,
    the kite must be registered, whoever won the race."""
    async with PostgresStorage.from_url(make_url(cleanup_interval=0)) as storage:
        kites = [make_identity() for _ in range(5)]
        stop = anyio.Event()
        purged = 0
        outcomes = {True: 0, False: 0}

        async def clean() -> None:
            nonlocal purged
            while not stop.is_set():
                purged += await storage.purge_expired()

        async def heartbeat(kite, index: int) -> None:
            for round_ in range(30):
                await storage.upsert(kite, VALUE, ttl=0.01)
                await anyio.sleep(0.005 * ((index + round_) % 4))  # before, at or after expiry
                updated = await storage.update(kite, VALUE, ttl=LONG_TTL)
                outcomes[updated] += 1
                if not updated:
                    await storage.upsert(kite, VALUE, ttl=LONG_TTL)
                assert [r.kite for r in await storage.get(Query(id=kite.id))] == [kite]

        async with anyio.create_task_group() as tg:
            tg.start_soon(clean)
            async with anyio.create_task_group() as beats:
                for index, kite in enumerate(kites):
                    beats.start_soon(heartbeat, kite, index)
            stop.set()
        # the race was real: entries expired and were purged, and both paths were taken
        assert purged > 0 and outcomes[True] > 0 and outcomes[False] > 0, (purged, outcomes)


# --- faults ----------------------------------------------------------------------------------


async def test_unreachable_storage_fails_fast_with_a_redacted_error():
    url = f"postgres://kite:s3cret-pw@127.0.0.1:{free_port()}/kite?connect_timeout=2"
    async with PostgresStorage.from_url(url) as storage:
        started = time.monotonic()
        with pytest.raises(PostgresUnavailableError) as info:
            await storage.get(Query(username="alice"))
        assert time.monotonic() - started < 3
        message = str(info.value)
        assert "s3cret-pw" not in message
        assert "postgresql://kite:***@127.0.0.1:" in message and "unavailable" in message
        # a burst of calls right after does not wait for new attempts
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(PostgresUnavailableError):
                await storage.upsert(make_identity(), VALUE, ttl=LONG_TTL)
        assert time.monotonic() - started < 1


async def test_wrong_credentials_name_the_dsn_without_the_password(postgres, caplog):
    url = postgres.url(password="not-the-password")
    async with PostgresStorage.from_url(url) as storage:
        with pytest.raises(PostgresAuthenticationError) as info:
            await storage.connect()
    message = str(info.value)
    assert f"postgresql://kite:***@127.0.0.1:{postgres.port}/kite" in message
    assert "password authentication failed" in message
    assert "not-the-password" not in message
    assert "not-the-password" not in caplog.text


async def test_storage_recovers_when_the_server_returns(flaky_postgres: TemporaryPostgres):
    flaky_postgres.stop()
    try:
        storage = PostgresStorage.from_url(flaky_postgres.url(connect_timeout=2))
        async with storage:
            # down from the start: clear errors, no hang
            with anyio.fail_after(5), pytest.raises(PostgresUnavailableError):
                await storage.get(Query(username="alice"))
            flaky_postgres.start()
            kite = make_identity()
            with anyio.fail_after(10):
                while True:
                    try:
                        await storage.upsert(kite, VALUE, ttl=LONG_TTL)
                        break
                    except PostgresUnavailableError:
                        await anyio.sleep(0.2)
            # a restart under a connected pool: calls fail or succeed, never hang; then work
            flaky_postgres.stop()
            with anyio.fail_after(5), pytest.raises(PostgresUnavailableError):
                await storage.get(Query(id=kite.id))
            flaky_postgres.start()
            with anyio.fail_after(10):
                found = await storage.get(Query(id=kite.id))  # the lost connection is replaced
            assert [r.kite for r in found] == [kite]
    finally:
        if not flaky_postgres.running:
            flaky_postgres.start()


async def test_connection_killed_mid_flight_is_retried(postgres, pg_storage: PostgresStorage):
    kite = make_identity()
    await pg_storage.upsert(kite, VALUE, ttl=LONG_TTL)
    # the server ends every connection of the pool (as on a failover or an admin's kill)
    await fetch(
        postgres,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'kite-kontrol' AND pid <> pg_backend_pid()",
    )
    assert [r.kite for r in await pg_storage.get(Query(id=kite.id))] == [kite]


async def test_a_released_connection_costs_no_reset_round_trip(postgres, make_url: MakeURL):
    # asyncpg's default reset query ran on every release: a second round trip per operation
    async with PostgresStorage.from_url(make_url(pool_min_size=1, pool_max_size=1)) as storage:
        kite = make_identity()
        await storage.upsert(kite, VALUE, ttl=LONG_TTL)
        last = await fetch(
            postgres,
            "SELECT query FROM pg_stat_activity WHERE application_name = 'kite-kontrol' "
            "AND pid <> pg_backend_pid()",
        )
        assert [row["query"].split()[:2] for row in last] == [["INSERT", "INTO"]]

        # a transaction left open (an operation cancelled half-way) is still rolled back
        async def leave_open(connection: asyncpg.Connection) -> None:
            await connection.execute("BEGIN")

        async def in_transaction(connection: asyncpg.Connection) -> bool:
            return connection.is_in_transaction()

        await storage._run("test", leave_open)
        assert not await storage._run("test", in_transaction)
        assert [r.kite for r in await storage.get(Query(id=kite.id))] == [kite]


async def test_concurrent_registrations_share_one_statement(
    pg_storage: PostgresStorage, monkeypatch
):
    real_run = pg_storage._run
    statements = []

    async def count(what, operation):
        statements.append(what)
        return await real_run(what, operation)

    monkeypatch.setattr(pg_storage, "_run", count)
    kites = [make_identity() for _ in range(40)]
    async with anyio.create_task_group() as tg:
        for kite in kites:
            tg.start_soon(functools.partial(pg_storage.upsert, kite, VALUE, ttl=LONG_TTL))
    assert 1 <= statements.count("upsert") < len(kites) // 4
    found = await pg_storage.get(Query(username="alice"))
    assert {r.kite.id for r in found} == {k.id for k in kites}


async def test_statement_timeout_is_a_storage_error(postgres, make_url: MakeURL):
    async with PostgresStorage.from_url(make_url(command_timeout=0.5)) as storage:
        await storage.connect()
        schema = storage.options.schema
        blocker = await asyncpg.connect(postgres.url(), timeout=10)
        try:
            async with blocker.transaction():
                await blocker.execute(f'LOCK TABLE "{schema}".kite IN ACCESS EXCLUSIVE MODE')
                started = time.monotonic()
                with pytest.raises(PostgresUnavailableError, match="did not answer in time"):
                    await storage.get(Query(username="alice"))
                assert time.monotonic() - started < 3
        finally:
            await blocker.close()
        assert await storage.get(Query(username="alice")) == []


# --- event loops and plugins -----------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error():
    url = "postgres://kite@127.0.0.1:1/kite"
    with pytest.raises(AsyncioRequiredError, match="needs asyncio"):
        PostgresStorage.from_url(url)
    storage = PostgresStorage(PostgresOptions.from_url(url, environ={}))  # made outside a loop
    with pytest.raises(AsyncioRequiredError, match="KITE_ANYIO_BACKEND=asyncio"):
        await storage.get(Query(username="alice"))


def test_entry_point_is_installed(postgres):
    registry = load_plugins(names=["postgres"], strict=True)
    storage = registry.storage_for_url(postgres.url())
    assert isinstance(storage, PostgresStorage)
