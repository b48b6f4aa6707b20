"""The PostgreSQL storage over TLS: a real server with ``ssl = on`` that refuses connections
without it (``hostssl``), certificates made by the test; the storage URL's ``sslmode`` and
``sslrootcert`` reach asyncpg as they are."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from kite_storage_postgres import PostgresStorage
from kite_storage_postgres.options import PostgresOptions
from kite_storage_postgres.testing import TemporaryPostgres
from tls_certs import TLSFiles, make_tls_files

from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import Query, RegisterValue, StorageError


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ssl_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TemporaryPostgres, TLSFiles]]:
    files = make_tls_files(tmp_path_factory.mktemp("pg-certs"))
    server = TemporaryPostgres(
        ssl_cert_file=files.server_cert, ssl_key_file=files.server_key, require_ssl=True
    )
    with server:
        yield server, files


async def roundtrip(url: str) -> None:
    kite = KiteIdentity("alice", "prod", "math", "1.0.0", "eu", "host", str(uuid.uuid4()))
    async with PostgresStorage.from_url(url) as storage:
        await storage.upsert(kite, RegisterValue("https://a:1/kite", "k"), ttl=60)
        (record,) = await storage.get(Query(id=kite.id))
        assert record.url == "https://a:1/kite"


@pytest.mark.anyio
async def test_verify_full_against_the_test_ca(
    ssl_postgres: tuple[TemporaryPostgres, TLSFiles],
) -> None:
    server, files = ssl_postgres
    schema = f"s{uuid.uuid4().hex[:10]}"
    url = server.url(sslmode="verify-full", sslrootcert=files.ca_file, schema=schema)
    await roundtrip(url)
    # the storage hands asyncpg these options untouched: the connection it makes is TLS
    dsn = PostgresOptions.from_url(url).dsn()
    assert "sslmode=verify-full" in dsn and "sslrootcert=" in dsn
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_what_tls_refuses_is_a_clear_storage_error(
    ssl_postgres: tuple[TemporaryPostgres, TLSFiles], tmp_path
) -> None:
    server, files = ssl_postgres
    # without TLS: the server's pg_hba refuses it
    with pytest.raises(StorageError) as caught:
        await roundtrip(server.url(sslmode="disable", connect_timeout=5))
    assert "SSL off" in str(caught.value) or "no pg_hba.conf entry" in str(caught.value)
    assert server.password not in str(caught.value)
    # a server certificate from a CA we do not trust
    stranger = make_tls_files(tmp_path / "stranger")
    with pytest.raises(StorageError) as caught:
        await roundtrip(
            server.url(sslmode="verify-full", sslrootcert=stranger.ca_file, connect_timeout=5)
        )
    assert "certificate verify failed" in str(caught.value)
    # and the server serves on
    await roundtrip(server.url(sslmode="verify-full", sslrootcert=files.ca_file))
