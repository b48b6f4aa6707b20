"""``postgres://``: Kontrol's storage on PostgreSQL through an asyncpg connection pool.

Opening the storage does no I/O: the pool is created, and the schema migrated, on first use, so
a Kontrol starts while the database is down and recovers when it returns. Until then every call
fails fast with :class:`~kite_storage_postgres.errors.PostgresUnavailableError` naming the
redacted DSN (a failed connection attempt is remembered for ``retry_interval`` seconds, so a
burst of calls does not queue behind one connect timeout each). A call that loses its
connection (the server restarted) is retried once on a fresh one; every statement is bounded by
``command_timeout``.

Expiry uses the database clock, shared by every Kontrol: each write sets ``updated_at = now()``
and ``expires_at = now() + ttl``. Reads filter ``expires_at > now()``, so an expired kite is never
returned; a background cleaner deletes expired rows every ``cleanup_interval`` seconds, skipping
rows another transaction holds, so it never races a heartbeat that is refreshing the row.

asyncpg is asyncio-only: under trio the storage raises
:class:`~kite_storage_postgres.errors.AsyncioRequiredError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import sniffio

from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import (
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
    validate_key_pair,
    validate_query,
    validate_write,
)
from kitecore.storage.batch import Batcher

from .errors import RETRYABLE, AsyncioRequiredError, map_error
from .feed import PostgresFeed
from .migrations import migrate
from .options import PostgresOptions

__all__ = ["PostgresStorage"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Query fields and their columns (Go's table calls ``name`` ``kitename``). ``version`` is
#: matched in Python: ``1.0`` must find ``1.0.0``, and constraints are not SQL.
_COLUMNS = {
    "username": "username",
    "environment": "environment",
    "name": "kitename",
    "region": "region",
    "hostname": "hostname",
    "id": "id",
}
_KITE_COLUMNS = "id, username, environment, kitename, version, region, hostname, url, key_id"
_CLEAN_BATCH = 1000
# closing the pool gave up (timeout) or the connection is gone: terminate it instead
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *RETRYABLE)


class PostgresStorage(Storage):
    """Kites and key pairs in PostgreSQL (see the module docs).

    ``retry_interval`` is how long a failed connection attempt is reported again before the
    next attempt. While a change feed is open (:meth:`watch`), expired kites are deleted (and
    so announced) every ``expiry_interval`` seconds.
    """

    def __init__(
        self,
        options: PostgresOptions,
        *,
        retry_interval: float = 1.0,
        expiry_interval: float = 0.5,
    ) -> None:
        self.options = options
        self.retry_interval = retry_interval
        self.expiry_interval = expiry_interval
        self._where = options.dsn(redact=True)
        self._pool: asyncpg.Pool | None = None
        self._lock: asyncio.Lock | None = None
        self._failure: tuple[float, StorageError] | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._closed = False
        self._feeds: set[PostgresFeed] = set()
        self._sql = _statements(f'"{options.schema}"')
        # concurrent registrations share one statement (and one commit)
        self._upserts: Batcher[_Write, bool] = Batcher(
            self._upsert_batch, group=_ttl_of, key=_id_of
        )

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> PostgresStorage:
        """The storage factory for ``postgres://`` URLs (see :mod:`.options`); no I/O."""
        _require_asyncio(allow_no_loop=True)
        return cls(PostgresOptions.from_url(url, environ))

    def __repr__(self) -> str:
        return f"<PostgresStorage {self._where}>"

    # --- connection ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the pool and migrate the schema now (otherwise done on first use)."""
        await self._get_pool()

    async def _get_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None:
            return pool
        _require_asyncio()
        if self._closed:
            raise StorageError("the postgres storage is closed")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one connection attempt at a time; the others share its outcome
            if self._pool is not None:
                return self._pool
            if self._failure is not None and time.monotonic() - self._failure[0] < (
                self.retry_interval
            ):
                raise self._failure[1]
            try:
                self._pool = await self._open_pool()
            except StorageError as exc:
                self._failure = (time.monotonic(), exc)
                raise
            self._failure = None
        if self.options.cleanup_interval > 0 and self._cleaner is None:
            self._cleaner = asyncio.get_running_loop().create_task(self._clean_forever())
        return self._pool

    async def _open_pool(self) -> asyncpg.Pool:
        options = self.options
        logger.debug("postgres.connect started: %s", self._where)
        pool = asyncpg.create_pool(options.dsn(), reset=_reset, **options.connect_kwargs())

        async def open_and_migrate() -> list[int]:
            await pool
            async with pool.acquire() as connection:
                return await migrate(connection, options.schema)

        try:
            # bounded as a whole: the pool's timeout covers one connection attempt only
            applied = await asyncio.wait_for(
                open_and_migrate(), options.connect_timeout * 2 + options.command_timeout
            )
        except Exception as exc:
            with contextlib.suppress(asyncpg.InterfaceError):  # never initialized
                pool.terminate()
            error = map_error(exc, "connect", self._where)
            logger.debug("postgres.connect failed: %s", error)  # the caller reports it
            raise error from exc
        if applied:
            logger.info("postgres schema %s migrated to %d", options.schema, applied[-1])
        logger.info("postgres storage connected: %s", self._where)
        return pool

    async def _run(self, what: str, operation: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """Run ``operation`` on a pooled connection; map driver errors; retry once when the
        connection was lost (every operation here is idempotent)."""
        for attempt in (1, 2):
            pool = await self._get_pool()
            try:
                async with pool.acquire(timeout=self.options.connect_timeout) as connection:
                    return await operation(connection)
            except StorageError:
                raise
            except RETRYABLE as exc:
                if attempt == 2 or self._closed:
                    raise map_error(exc, what, self._where) from exc
                logger.info("postgres %s: connection lost (%s); retrying", what, exc)
                # the others were most likely cut too (server restart): replace them all
                await pool.expire_connections()
                await asyncio.sleep(0.05)
            except (asyncpg.PostgresError, TimeoutError) as exc:
                raise map_error(exc, what, self._where) from exc
            except Exception as exc:  # a driver surprise must not crash Kontrol
                logger.exception("postgres %s: unexpected error", what)
                raise map_error(exc, what, self._where) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- kites ---------------------------------------------------------------------------------

    async def upsert(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> None:
        validate_write(kite, value, ttl)
        if not await self._upserts.submit(_Write(kite, value, float(ttl))):
            raise IdConflictError(f"kite id {kite.id} is registered by another user")

    async def _upsert_batch(self, batch: list[_Write]) -> list[bool]:
        """Upsert ``batch`` (one TTL, distinct ids) in one statement: whether each was written
        (not: a live kite of another user holds the id)."""
        columns = list(zip(*(_kite_args(w.kite, w.value) for w in batch), strict=True))
        ttl = batch[0].ttl
        rows = await self._run(
            "upsert", lambda c: c.fetch(self._sql["upsert"], *map(list, columns), ttl)
        )
        written = {row[0] for row in rows}
        return [w.kite.id in written for w in batch]

    async def update(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> bool:
        validate_write(kite, value, ttl)
        row = await self._run(
            "update",
            lambda c: c.fetchval(self._sql["update"], *_kite_args(kite, value), float(ttl)),
        )
        return row is not None

    async def delete(self, kite: KiteIdentity) -> None:
        await self._run("delete", lambda c: c.execute(self._sql["delete"], kite.id, kite.username))

    async def get(self, query: Query) -> list[KiteRecord]:
        validate_query(query)
        conditions, args = [], []
        for field, column in _COLUMNS.items():
            wanted = getattr(query, field)
            if wanted:
                args.append(wanted)
                conditions.append(f"{column} = ${len(args)}")
        sql = self._sql["select"] + "".join(f" AND {c}" for c in conditions)
        rows = await self._run("get", lambda c: c.fetch(sql, *args))
        records = [_record(row) for row in rows]
        if query.version:
            records = [r for r in records if query.matches(r.kite)]
        return records

    async def purge_expired(self) -> int:
        """Delete expired kites now (the cleaner's pass); returns how many were deleted."""
        total = 0
        while True:
            status = await self._run("clean", lambda c: c.execute(self._sql["clean"], _CLEAN_BATCH))
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < _CLEAN_BATCH:
                return total

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.cleanup_interval)
            try:
                deleted = await self.purge_expired()
            except StorageError as exc:
                logger.warning("postgres cleaner: %s", exc)
                continue
            if deleted:
                logger.debug("postgres cleaner deleted %d expired kites", deleted)

    # --- change feed ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[ChangeFeed]:
        """The change feed: LISTEN/NOTIFY from a trigger (:mod:`kite_storage_postgres.feed`)."""
        _require_asyncio()
        if self._closed:
            raise StorageError("the postgres storage is closed")
        feed = ChangeFeed()
        listener = PostgresFeed(self, feed)
        await listener.start()
        task = asyncio.get_running_loop().create_task(listener.run())
        self._feeds.add(listener)
        try:
            yield feed
        finally:
            self._feeds.discard(listener)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await listener.aclose()
            feed.close()

    # --- key pairs -----------------------------------------------------------------------------

    async def add_key(self, pair: KeyPairRecord) -> None:
        validate_key_pair(pair)
        public = pair.public.strip()

        async def add(c: asyncpg.Connection) -> tuple[bool, Any]:
            if await c.fetchval(self._sql["add_key"], pair.id, public, pair.private.strip()):
                return True, None
            return False, await c.fetchrow(self._sql["key_by_id"], pair.id)

        inserted, existing = await self._run("add_key", add)
        if inserted:
            return
        if existing is None:  # the id is free, so the public key is the clash
            raise InvalidInputError("this public key is already stored under another id")
        if existing["public"] != public:
            raise InvalidInputError(f"key pair id {pair.id} is taken by another key")

    async def delete_key(self, id_or_public: str) -> None:
        if not isinstance(id_or_public, str) or not id_or_public:
            raise KeyNotFoundError()
        row = await self._run(
            "delete_key",
            lambda c: c.fetchval(self._sql["delete_key"], id_or_public, id_or_public.strip()),
        )
        if row is None:
            raise KeyNotFoundError()

    async def get_key_by_id(self, key_id: str) -> KeyPairRecord:
        if not isinstance(key_id, str) or not key_id:
            raise KeyNotFoundError()
        row = await self._run("get_key", lambda c: c.fetchrow(self._sql["key_by_id"], key_id))
        return _active_key(row)

    async def get_key_by_public(self, public: str) -> KeyPairRecord:
        if not isinstance(public, str) or not public.strip():
            raise KeyNotFoundError()
        row = await self._run(
            "get_key", lambda c: c.fetchrow(self._sql["key_by_public"], public.strip())
        )
        return _active_key(row)

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the cleaner and close the pool (waiting at most ``command_timeout``)."""
        self._closed = True
        for listener in list(self._feeds):
            listener.feed.fail(StorageError("the postgres storage is closed"))
            await listener.aclose()
        cleaner, self._cleaner = self._cleaner, None
        if cleaner is not None:
            cleaner.cancel()
            try:
                await cleaner
            except asyncio.CancelledError:
                pass
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.options.command_timeout)
            except _CLOSE_ERRORS:
                pool.terminate()


def _require_asyncio(*, allow_no_loop: bool = False) -> None:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        if allow_no_loop:
            return
        raise
    if library != "asyncio":
        raise AsyncioRequiredError(
            f"the postgres storage needs asyncio (asyncpg is asyncio-only), not {library}; "
            "run Kontrol with KITE_ANYIO_BACKEND=asyncio"
        )


async def _reset(connection: asyncpg.Connection) -> None:
    """Make a released pool connection ready for the next user.

    asyncpg's default runs its reset query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``) on every release: a second round trip for each of our one-statement
    operations. None of that state is ever set on a pooled connection here (single statements,
    no cursors, session settings only at connect, the migrations' lock is transaction-scoped,
    the change feed LISTENs on a connection of its own), so only an open transaction -- an
    operation cancelled half-way -- is rolled back.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


@dataclass(frozen=True, slots=True)
class _Write:
    """One registration waiting for the next batched upsert."""

    kite: KiteIdentity
    value: RegisterValue
    ttl: float


def _ttl_of(write: _Write) -> float:
    return write.ttl


def _id_of(write: _Write) -> str:
    return write.kite.id


def _kite_args(kite: KiteIdentity, value: RegisterValue) -> tuple[str, ...]:
    return (
        kite.id,
        kite.username,
        kite.environment,
        kite.name,
        kite.version,
        kite.region,
        kite.hostname,
        value.url,
        value.key_id,
    )


def _record(row: asyncpg.Record) -> KiteRecord:
    kite = KiteIdentity(
        username=row["username"],
        environment=row["environment"],
        name=row["kitename"],
        version=row["version"],
        region=row["region"],
        hostname=row["hostname"],
        id=row["id"],
    )
    return KiteRecord(kite, row["url"], row["key_id"])


def _active_key(row: asyncpg.Record | None) -> KeyPairRecord:
    if row is None:
        raise KeyNotFoundError()
    record = KeyPairRecord(row["id"], row["public"], row["private"], row["deleted_at"])
    if record.deleted_at is not None:
        raise KeyDeletedError(record)
    return record


def _statements(schema: str) -> dict[str, str]:
    """The SQL texts for one (quoted) schema. ``$1..$9`` are :func:`_kite_args`, ``$10`` the
    TTL in seconds."""
    kite, key = f"{schema}.kite", f"{schema}.key"
    expires = "now() + make_interval(secs => $10)"
    key_columns = "id, public, private, extract(epoch FROM deleted_at)::float8 AS deleted_at"
    return {
        # One statement for a batch of kites ($1..$9 arrays, one element per kite, distinct
        # ids): insert, or take over the row if it is ours or expired; an id not returned means
        # a live kite of another user holds it.
        "upsert": f"""
            INSERT INTO {kite} AS k ({_KITE_COLUMNS}, created_at, updated_at, expires_at)
            SELECT r.*, now(), now(), {expires}
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                        $6::text[], $7::text[], $8::text[], $9::text[])
                AS r({_KITE_COLUMNS})
            ON CONFLICT (id) DO UPDATE SET
                username = EXCLUDED.username, environment = EXCLUDED.environment,
                kitename = EXCLUDED.kitename, version = EXCLUDED.version,
                region = EXCLUDED.region, hostname = EXCLUDED.hostname,
                url = EXCLUDED.url, key_id = EXCLUDED.key_id,
                created_at = CASE WHEN k.expires_at <= now() THEN now() ELSE k.created_at END,
                updated_at = now(), expires_at = EXCLUDED.expires_at
            WHERE k.username = EXCLUDED.username OR k.expires_at <= now()
            RETURNING k.id""",
        "update": f"""
            UPDATE {kite} SET
                environment = $3, kitename = $4, version = $5, region = $6, hostname = $7,
                url = $8, key_id = $9, updated_at = now(), expires_at = {expires}
            WHERE id = $1 AND username = $2 AND expires_at > now()
            RETURNING 1""",
        "delete": f"DELETE FROM {kite} WHERE id = $1 AND username = $2",
        "select": f"SELECT {_KITE_COLUMNS} FROM {kite} WHERE expires_at > now()",
        # SKIP LOCKED: a row a heartbeat is refreshing right now is left alone, and the outer
        # condition is checked again on the row's newest version.
        "clean": f"""
            DELETE FROM {kite} WHERE expires_at <= now() AND id IN (
                SELECT id FROM {kite} WHERE expires_at <= now()
                LIMIT $1 FOR UPDATE SKIP LOCKED)""",
        "add_key": f"""
            INSERT INTO {key} (id, public, private) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING RETURNING 1""",
        "delete_key": f"""
            UPDATE {key} SET deleted_at = coalesce(deleted_at, now())
            WHERE id = $1 OR public = $2 RETURNING 1""",
        "key_by_id": f"SELECT {key_columns} FROM {key} WHERE id = $1",
        "key_by_public": f"SELECT {key_columns} FROM {key} WHERE public = $1",
    }
