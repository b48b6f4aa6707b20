"""The plugin's errors, and the one place asyncpg's exceptions become them.

Callers catch :class:`~kitecore.storage.StorageError` (Kontrol does), never asyncpg's
classes: httpcore's ``map_exceptions`` habit. Messages name the DSN with the password redacted.
"""

from __future__ import annotations

import asyncpg

from kitecore.storage import StorageError

__all__ = [
    "RETRYABLE",
    "AsyncioRequiredError",
    "PostgresAuthenticationError",
    "PostgresUnavailableError",
    "map_error",
]


class PostgresUnavailableError(StorageError):
    """The server cannot be reached, went away mid-call, or did not answer in time."""


class PostgresAuthenticationError(PostgresUnavailableError):
    """The server refused the credentials (or the database/role does not exist)."""


class AsyncioRequiredError(StorageError, RuntimeError):
    """asyncpg runs on asyncio only; the storage was used under another event loop (trio)."""


#: Errors after which a fresh connection may succeed: worth one retry.
RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    # asyncpg's protocol can trip over a connection the server just ended
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.CrashShutdownError,
)

_AUTH_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidCatalogNameError,
)


def map_error(exc: BaseException, what: str, where: str) -> StorageError:
    """The :class:`StorageError` to raise for driver exception ``exc`` during ``what``
    against the (redacted) DSN ``where``."""
    if isinstance(exc, _AUTH_ERRORS):
        return PostgresAuthenticationError(f"postgres refused the connection to {where}: {exc}")
    if isinstance(exc, TimeoutError):
        return PostgresUnavailableError(f"{what}: postgres at {where} did not answer in time")
    if isinstance(exc, RETRYABLE):
        detail = str(exc) or type(exc).__name__
        return PostgresUnavailableError(f"{what}: postgres at {where} is unavailable: {detail}")
    return StorageError(f"{what} failed on postgres at {where}: {exc}")
