"""A throw-away PostgreSQL for the storage benchmark, started like the test fixture does.

``bench/storage.py --postgres`` loads this file and calls :func:`start_postgres`. The server
comes from the machine's PostgreSQL binaries through
:class:`kite_storage_postgres.testing.TemporaryPostgres` (``initdb`` in a temporary directory,
127.0.0.1 on a free port, run as the ``postgres`` user when we are root), so tests and
benchmarks share one way of starting it.

    with start_postgres(work_dir) as url: ...          # sync
    async with postgres_server() as url: ...            # async (start/stop in a thread)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
from kite_storage_postgres.testing import TemporaryPostgres

__all__ = ["POOL_SIZE", "postgres_server", "start_postgres"]

#: Connections per storage: enough for the benchmark's 64 concurrent writers to keep the
#: server busy on a small machine without queueing on the pool.
POOL_SIZE = 16


@contextlib.contextmanager
def start_postgres(work_dir: Path | None = None) -> Iterator[str]:
    """Start a server, yield a ``postgres://`` storage URL, remove the server afterwards.

    ``work_dir`` is accepted for ``bench/storage.py``'s interface but not used: the cluster
    lives in a temporary directory of its own, which the ``postgres`` user must be able to
    enter (a caller's private temp directory may not be).
    """
    del work_dir
    with TemporaryPostgres() as server:
        yield server.url(pool_max_size=POOL_SIZE, pool_min_size=POOL_SIZE)


@contextlib.asynccontextmanager
async def postgres_server() -> AsyncIterator[str]:
    """``async with postgres_server() as url:`` the same, without blocking the event loop."""
    server = TemporaryPostgres()
    try:
        await anyio.to_thread.run_sync(server.start)
        yield server.url(pool_max_size=POOL_SIZE, pool_min_size=POOL_SIZE)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.cleanup)
