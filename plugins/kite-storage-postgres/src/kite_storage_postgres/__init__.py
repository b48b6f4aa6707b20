"""Kontrol storage on PostgreSQL (asyncpg): ``kite kontrol --storage postgres://...``.

>>> storage = PostgresStorage.from_url("postgres://kontrol@db.example.com/kite")
>>> async with storage:                     # asyncio only
...     await storage.upsert(kite, RegisterValue(url, key_id), ttl=90)

See :mod:`.options` for the URL and ``KONTROL_POSTGRES_*`` variables, :mod:`.migrations` for
the schema, and :mod:`.testing` for a throwaway server for tests and benchmarks.
"""

from .errors import AsyncioRequiredError, PostgresAuthenticationError, PostgresUnavailableError
from .migrations import MIGRATIONS, Migration, migrate
from .options import ENV_PREFIX, PostgresOptions
from .storage import PostgresStorage

__all__ = [
    "ENV_PREFIX",
    "MIGRATIONS",
    "AsyncioRequiredError",
    "Migration",
    "PostgresAuthenticationError",
    "PostgresOptions",
    "PostgresStorage",
    "PostgresUnavailableError",
    "migrate",
]

__version__ = "0.1.0"
