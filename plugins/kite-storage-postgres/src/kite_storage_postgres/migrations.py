"""The storage's tables, created and upgraded by versioned migrations.

Each :class:`Migration` runs once per schema, in order, and is recorded in
``<schema>.schema_migrations``. All pending migrations run in one transaction holding a
transaction-level advisory lock derived from the schema name, so several Kontrols starting
together on one database apply each step exactly once, and a failed step leaves nothing half
done. Migrations are append-only: never edit one that was released, add the next number.

Compared with Go Kontrol's schema (protocol.md §8.3): ids and key ids are TEXT, not UUID (kite
ids are whatever the kites claim), there is no foreign key from kites to key pairs, the table
is logged (a crash of the server does not wipe registrations), and each row carries
``expires_at`` (the write's ``updated_at`` plus its TTL) so expiry is one indexed comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

__all__ = ["LOCK_CLASS", "MIGRATIONS", "Migration", "migrate"]

logger = logging.getLogger(__name__)

#: First key of the advisory lock (``'kite'`` in ASCII); the second is ``hashtext(schema)``.
LOCK_CLASS = 0x6B697465
#: How long a starting Kontrol waits for another one's migrations before giving up.
LOCK_TIMEOUT = "60s"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step; ``{schema}`` in ``sql`` is replaced by the quoted schema name."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "kites",
        """
        CREATE TABLE {schema}.kite (
            id          TEXT PRIMARY KEY,
            username    TEXT NOT NULL,
            environment TEXT NOT NULL,
            kitename    TEXT NOT NULL,
            version     TEXT NOT NULL,
            region      TEXT NOT NULL,
            hostname    TEXT NOT NULL,
            url         TEXT NOT NULL,
            key_id      TEXT NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at  TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX kite_name_idx ON {schema}.kite (kitename, username, environment);
        CREATE INDEX kite_username_idx ON {schema}.kite (username, environment);
        CREATE INDEX kite_expires_at_idx ON {schema}.kite (expires_at);
        """,
    ),
    Migration(
        2,
        "key pairs",
        """
        CREATE TABLE {schema}.key (
            id         TEXT PRIMARY KEY,
            public     TEXT NOT NULL UNIQUE,
            private    TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            deleted_at TIMESTAMPTZ,
            CONSTRAINT key_deleted_after_created
                CHECK (deleted_at IS NULL OR created_at <= deleted_at)
        );
        CREATE INDEX key_deleted_at_public_idx
            ON {schema}.key (deleted_at DESC NULLS FIRST, public);
        """,
    ),
    Migration(
        3,
        "key pairs are retired, never deleted",
        """
        CREATE FUNCTION {schema}.refuse_key_delete() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'kite key pairs are retired (deleted_at), never deleted';
            END $$;
        CREATE TRIGGER key_no_delete BEFORE DELETE ON {schema}.key
            FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_key_delete();
        """,
    ),
    Migration(
        4,
        "kite changes are notified (the change feed)",
        """
        CREATE FUNCTION {schema}.kite_event(action TEXT, k {schema}.kite) RETURNS TEXT
            LANGUAGE sql IMMUTABLE AS $$
            SELECT json_build_object(
                'action', action, 'id', k.id, 'username', k.username,
                'environment', k.environment, 'name', k.kitename, 'version', k.version,
                'region', k.region, 'hostname', k.hostname, 'url', k.url, 'key_id', k.key_id
            )::text
            $$;
        CREATE FUNCTION {schema}.notify_kite_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE
                channel TEXT := 'kite_changes_' || left(md5(TG_TABLE_SCHEMA), 16);
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    PERFORM pg_notify(channel, {schema}.kite_event('DEREGISTER', OLD));
                    RETURN NULL;
                END IF;
                IF TG_OP = 'UPDATE' THEN
                    IF OLD.expires_at > now()
                        AND (OLD.username, OLD.environment, OLD.kitename, OLD.version,
                             OLD.region, OLD.hostname)
                        = (NEW.username, NEW.environment, NEW.kitename, NEW.version,
                           NEW.region, NEW.hostname) THEN
                        RETURN NULL;  -- a refresh or re-registration of a live kite
                    END IF;
                    PERFORM pg_notify(channel, {schema}.kite_event('DEREGISTER', OLD));
                END IF;
                PERFORM pg_notify(channel, {schema}.kite_event('REGISTER', NEW));
                RETURN NULL;
            END $$;
        CREATE TRIGGER kite_notify AFTER INSERT OR UPDATE OR DELETE ON {schema}.kite
            FOR EACH ROW EXECUTE FUNCTION {schema}.notify_kite_change();
        """,
    ),
)


def _quote(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


async def migrate(
    connection: asyncpg.Connection,
    schema: str,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> list[int]:
    """Bring ``schema`` up to the newest migration; returns the versions applied now.

    Safe to call from many processes at once (see the module docs). A database already newer
    than this plugin is left alone, with a warning.
    """
    quoted = _quote(schema)
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, schema
        )
        # checked first: CREATE ... IF NOT EXISTS still needs the CREATE privilege
        ready = await connection.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{quoted}.schema_migrations"
        )
        if not ready:
            await connection.execute(
                f"""
            CREATE SCHEMA IF NOT EXISTS {quoted};
            CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """
            )
        rows = await connection.fetch(f"SELECT version FROM {quoted}.schema_migrations")
        done = {row["version"] for row in rows}
        newest = max((m.version for m in migrations), default=0)
        if done and max(done) > newest:
            logger.warning(
                "postgres schema %s is at version %d, newer than this plugin's %d",
                schema,
                max(done),
                newest,
            )
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            logger.info(
                "postgres schema %s: migration %d (%s)", schema, migration.version, migration.name
            )
            await connection.execute(migration.sql.format(schema=quoted))
            await connection.execute(
                f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied
