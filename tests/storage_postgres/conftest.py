"""Fixtures for the PostgreSQL storage tests: one throwaway server for the session.

The server comes from the machine's PostgreSQL binaries (``initdb`` in a temp directory, see
:mod:`kite_storage_postgres.testing`); each test gets a schema of its own, dropped afterwards.
asyncpg is asyncio-only, so these tests run on asyncio alone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from kite_storage_postgres import PostgresStorage
from kite_storage_postgres.testing import TemporaryPostgres


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    """A PostgreSQL server for the whole session, stopped and removed at the end."""
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def flaky_postgres() -> Iterator[TemporaryPostgres]:
    """A server of its own for the fault tests, which stop and start it."""
    with TemporaryPostgres() as server:
        yield server


MakeURL = Callable[..., str]


@pytest.fixture
async def make_url(postgres: TemporaryPostgres) -> AsyncIterator[MakeURL]:
    """``make_url(**params)``: a storage URL with a fresh schema (dropped after the test)."""
    schemas: list[str] = []

    def factory(**params: object) -> str:
        params.setdefault("schema", f"t_{uuid.uuid4().hex[:16]}")
        schemas.append(str(params["schema"]))
        return postgres.url(**params)

    yield factory
    if schemas:
        connection = await asyncpg.connect(postgres.url(), timeout=10)
        try:
            for schema in set(schemas):
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


@pytest.fixture
async def pg_storage(make_url: MakeURL) -> AsyncIterator[PostgresStorage]:
    """A connected storage on an empty schema."""
    async with PostgresStorage.from_url(make_url()) as storage:
        await storage.connect()
        yield storage
