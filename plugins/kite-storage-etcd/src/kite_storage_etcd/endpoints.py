"""Calls to an etcd cluster through aetcd, failing over between endpoints, with errors mapped.

One :class:`aetcd.Client` (one gRPC channel) per endpoint, made on first use. A call goes to the
current endpoint; when it cannot be reached, times out or has no leader, the next endpoint is
tried (and stays current), with a short pause after each full round, until the operation's
deadline. Every failure reaches the caller as a :class:`~kitecore.storage.StorageError`
(:class:`EtcdUnavailableError` when no endpoint answered), never as a gRPC or aetcd exception.

aetcd and ``grpc.aio`` run on asyncio only: :func:`require_asyncio` turns a call from trio into
a clear :class:`AsyncioRequiredError` instead of a confusing failure deep inside gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aetcd
import aetcd.exceptions
import anyio
import grpc
import grpc.aio
import sniffio

from kitecore.storage import StorageError

from .tls import TLSClient, tls_credentials
from .url import EtcdURL

__all__ = ["AsyncioRequiredError", "Endpoints", "EtcdUnavailableError", "require_asyncio"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: gRPC channel options: come back quickly after an endpoint restarts (gRPC's default reconnect
#: backoff grows to two minutes), and accept large range answers (a scan of every kite).
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.max_receive_message_length": 256 * 1024 * 1024,
}

#: The bound on one attempt. Calls run on asyncio only (:func:`require_asyncio`), so where
#: ``asyncio.timeout`` exists it is used: it costs half of ``anyio.fail_after``, and every
#: registration makes two etcd calls. Both raise :class:`TimeoutError` when they expire.
_attempt_deadline: Callable[[float], contextlib.AbstractAsyncContextManager[object]]
if sys.version_info >= (3, 11):
    _attempt_deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _attempt_deadline(delay: float) -> AsyncIterator[None]:
        with anyio.fail_after(delay):
            yield


#: Seconds :meth:`Endpoints.aclose` lets gRPC deliver the completions of the calls it cancelled.
_SETTLE = 0.05

#: Errors that mean "this endpoint can't serve now", worth trying another one.
_TRANSIENT = (
    aetcd.exceptions.ConnectionFailedError,  # UNAVAILABLE: refused, no leader, leader changed
    aetcd.exceptions.ConnectionTimeoutError,  # DEADLINE_EXCEEDED
    TimeoutError,  # aetcd's wait for a concurrent connect
)


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "this endpoint can't serve now", worth trying another one: one of
    :data:`_TRANSIENT`, or etcd's own answer that the call's deadline passed while the member
    waited (for a leader, say). That answer is Go's context error with the gRPC code UNKNOWN,
    sent when the member sees the deadline before the client sees ``DEADLINE_EXCEEDED``
    (whichever comes first is a race)."""
    if isinstance(exc, _TRANSIENT):
        return True
    cause = exc.__cause__
    return (
        isinstance(cause, grpc.aio.AioRpcError)
        and cause.code() == grpc.StatusCode.UNKNOWN
        and cause.details() == "context deadline exceeded"
    )


class EtcdUnavailableError(StorageError):
    """No etcd endpoint answered within the operation's timeout."""


class AsyncioRequiredError(RuntimeError):
    """The etcd storage was used outside asyncio (aetcd and grpc.aio are asyncio-only)."""


def require_asyncio() -> None:
    """Raise :class:`AsyncioRequiredError` when running under an event loop other than asyncio."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return  # not in an event loop yet: checked again on the first call
    if library != "asyncio":
        raise AsyncioRequiredError(
            f"the etcd storage needs asyncio (aetcd and grpc.aio are asyncio-only), not "
            f"{library}; run Kontrol on asyncio (KITE_ANYIO_BACKEND=asyncio)"
        )


class Endpoints:
    """The etcd endpoints of one storage URL, and the clients that talk to them."""

    def __init__(self, url: EtcdURL) -> None:
        self.url = url
        self._clients: list[aetcd.Client | None] = [None] * len(url.endpoints)
        self._current = 0
        self._closed = False
        # one slow endpoint must leave time to try another
        many = len(url.endpoints) > 1
        self._attempt_timeout = max(1.0, url.timeout / 2) if many else url.timeout

    def describe(self) -> str:
        """The endpoints as ``host:port,...`` for messages."""
        return ",".join(f"{host}:{port}" for host, port in self.url.endpoints)

    def _client(self, index: int) -> aetcd.Client:
        client = self._clients[index]
        if client is None:
            host, port = self.url.endpoints[index]
            url = self.url
            client = (TLSClient if url.tls else aetcd.Client)(
                host=host,
                port=port,
                username=url.username or None,
                password=url.password or None,
                timeout=self._attempt_timeout,
                options=CHANNEL_OPTIONS,
            )
            if isinstance(client, TLSClient):
                client.credentials = tls_credentials(url)
            self._clients[index] = client
        return client

    def current(self) -> tuple[int, aetcd.Client]:
        """The endpoint in use and its client (for long-lived streams such as watches)."""
        if self._closed:
            raise StorageError("the etcd storage is closed")
        require_asyncio()
        return self._current, self._client(self._current)

    def fail_over(self, index: int) -> None:
        """Endpoint ``index`` failed: use the next one (if it is still the current one)."""
        self._fail_over(index)

    @property
    def closed(self) -> bool:
        return self._closed

    def _fail_over(self, index: int) -> None:
        if self._current == index and len(self._clients) > 1:
            self._current = (index + 1) % len(self._clients)
            host, port = self.url.endpoints[self._current]
            logger.info("etcd: failing over to %s:%d", host, port)

    async def call(self, what: str, operation: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run ``operation(client)``, failing over between endpoints until the URL's timeout.

        ``what`` names the operation in errors. Raises :class:`EtcdUnavailableError` when no
        endpoint could serve, :class:`StorageError` for any other etcd error.
        """
        if self._closed:
            raise StorageError("the etcd storage is closed")
        require_asyncio()
        deadline = time.monotonic() + self.url.timeout
        pause = 0.05
        tried = 0
        last_error = "no attempt"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EtcdUnavailableError(
                    f"etcd at {self.describe()} did not answer ({what}) within "
                    f"{self.url.timeout:g}s: {last_error}"
                )
            index = self._current
            try:
                async with _attempt_deadline(min(remaining, self._attempt_timeout + 0.5)):
                    return await operation(self._client(index))
            except (aetcd.exceptions.ClientError, TimeoutError) as exc:
                if not _transient(exc):
                    raise StorageError(f"etcd {what} failed: {exc}") from None
                last_error = str(exc) or type(exc).__name__
            except (grpc.RpcError, OSError) as exc:  # not wrapped by aetcd (channel set-up)
                raise StorageError(f"etcd {what} failed: {exc}") from None
            logger.debug("etcd %s on endpoint %d failed: %s", what, index, last_error)
            self._fail_over(index)
            tried += 1
            if tried % len(self._clients) == 0:  # a full round failed: let the cluster settle
                await anyio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.5)

    async def aclose(self) -> None:
        """Close every channel; later calls raise :class:`StorageError`."""
        self._closed = True
        clients, self._clients = self._clients, [None] * len(self._clients)
        for client in clients:
            if client is not None:
                with anyio.move_on_after(2, shield=True):
                    try:
                        await client.close()
                    except Exception as exc:  # closing must not fail the caller
                        logger.debug("closing an etcd channel: %s", exc)
        if any(client is not None for client in clients):
            # Closing a channel cancels its calls (the storage's watch stream among them), and
            # grpc.aio hands the cancelled calls' completions to this event loop from its
            # poller thread a moment later. Let them arrive while the loop runs: one arriving
            # after the loop closed raises "Event loop is closed" inside the next loop to use
            # gRPC in this process.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(_SETTLE)
