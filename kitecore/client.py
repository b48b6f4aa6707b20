"""The remote end of a connection: :class:`Client`.

A client is either dialed by the local kite (``kite.new_client(url)``) or made by the
kite for a connection another kite opened to it (``request.client``). Both can ``tell``.
"""

from __future__ import annotations

import builtins
import contextvars
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from kitecore.backoff import Backoff
from kitecore.connection import Connection
from kitecore.interceptors import METADATA_FIELD, ClientCall
from kitecore.protocol.dnode import SCALAR_TYPES, Path
from kitecore.protocol.envelope import Authentication, RequestEncoder
from kitecore.protocol.errors import AuthenticationError, KiteTimeoutError, SendError
from kitecore.protocol.identity import KiteIdentity
from kitecore.taskgroups import OwnedTaskGroup
from kitecore.tls import is_secure_url, tls_failure_hint
from kitecore.transport import (
    DialOptions,
    MessageStream,
    PeerInfo,
    Transport,
    TransportMismatchError,
    enforces_handshake_timeout,
)
from kitecore.waiter import WaitTimeout

if TYPE_CHECKING:
    from kitecore.kite import Kite

logger = logging.getLogger(__name__)

#: Marks "use the kite's configured timeout" in :meth:`Client.tell`.
DEFAULT_TIMEOUT: Any = object()

Hook = Callable[["Client"], Any]

#: True while a call is being retried after a token renewal (so it is retried only once).
_RETRYING_AFTER_RENEWAL = contextvars.ContextVar("kite_retrying_after_renewal", default=False)


def split_urls(url: str | Sequence[str] | None) -> list[str]:
    """``"a,b"``, ``["a", "b"]`` or ``None`` as a list of URLs."""
    if url is None:
        return []
    parts = url.split(",") if isinstance(url, str) else list(url)
    return [part.strip() for part in parts if part.strip()]


class DialError(SendError):
    """Dialing a kite failed (refused, handshake rejected, timed out)."""


class DialTimeoutError(DialError, builtins.TimeoutError):
    """Dialing a kite did not finish in time (a silent listener, a stalled handshake)."""


def _refused(exc: BaseException | None, depth: int = 0) -> bool:
    """True if ``exc`` says the peer refused the TCP connection (also when anyio reports every
    address of a host name failing, with the refusals as its cause)."""
    if exc is None or depth > 4:
        return False
    if isinstance(exc, ConnectionRefusedError):
        return True
    group = getattr(exc, "exceptions", None)  # an exception group (Python 3.10: a backport)
    if isinstance(group, tuple) and group:
        return all(_refused(each, depth + 1) for each in group)
    return _refused(exc.__cause__, depth + 1)


class Client:
    """A connection to another kite, and what we know about that kite."""

    def __init__(
        self,
        kite: Kite,
        url: str | Sequence[str] | None = None,
        *,
        auth: Authentication | None = None,
        remote_kite: KiteIdentity | None = None,
        transport: str | None = None,
        connection: Connection | None = None,
    ) -> None:
        self.kite = kite
        #: Where the kite is: several URLs (or one comma-separated string) are alternatives
        #: that :meth:`dial_forever` fails over between, in turn.
        self.urls: list[str] = split_urls(url)
        #: Credentials sent with every call (``None``: ``authentication: null``).
        self.auth = auth
        # what _tell encodes requests with, and the ``auth`` it was made for
        self._request_encoder: RequestEncoder | None = None
        self._encoder_auth: Any = None
        #: The remote kite's identity, if known (from Kontrol, or its first request).
        self.remote_kite = remote_kite
        #: The remote username (authenticated on accepted connections).
        self.username = remote_kite.username if remote_kite else ""
        self.transport = transport
        self.connection: Connection | None = connection
        # made when first needed: a kite holds a client per accepted connection, and those
        # never redial and seldom get hooks
        self._backoff: Backoff | None = None
        self._connect_hooks: list[Hook] | tuple[()] = ()
        self._disconnect_hooks: list[Hook] | tuple[()] = ()
        self._token_expire_hooks: list[Hook] | tuple[()] = ()
        self._reconnect = False
        self._closed = False
        self._connected_event_: anyio.Event | None = None
        self._serving = False  # _serve runs: the connected event is (or would be) set
        #: The group this client's tasks run in instead of its kite's: its own (``async with
        #: client``), or one lent by the pool or Kontrol client that made it.
        self._own_task_group: TaskGroup | None = None
        self._own_tasks = OwnedTaskGroup()
        self._reconnect_scope: anyio.CancelScope | None = None
        self._pause_scope: anyio.CancelScope | None = None  # the reconnect loop's backoff wait
        self._attempt: anyio.Event | None = None  # set when the dial in progress ends
        #: Why the last dial failed (``None`` once a dial succeeds).
        self.last_dial_error: DialError | None = None

    def __repr__(self) -> str:
        who = self.remote_kite.path if self.remote_kite else (self.url or "?")
        return f"<Client {who}>"

    # ------------------------------------------------------------ state and hooks

    @property
    def url(self) -> str | None:
        """The URL dialed now (the first of :attr:`urls` until a failover)."""
        return self.urls[0] if self.urls else None

    @url.setter
    def url(self, value: str | Sequence[str] | None) -> None:
        self.urls = split_urls(value)

    def _fail_over(self) -> None:
        """Make the next URL current (after a failed dial or a drop)."""
        if len(self.urls) > 1:
            self.urls.append(self.urls.pop(0))

    @property
    def _connected_event(self) -> anyio.Event:
        # created on first use (a client may be made before the event loop runs, and most
        # are never waited for): set at once if made while _serve runs
        if self._connected_event_ is None:
            self._connected_event_ = anyio.Event()
            if self._serving:
                self._connected_event_.set()
        return self._connected_event_

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.closed

    @property
    def backoff(self) -> Backoff:
        """The waits between redials (Kite's reconnect backoff unless replaced)."""
        if self._backoff is None:
            self._backoff = Backoff()
        return self._backoff

    @backoff.setter
    def backoff(self, value: Backoff) -> None:
        self._backoff = value

    def on_connect(self, hook: Hook) -> Hook:
        """Call ``hook(client)`` after every successful dial (usable as a decorator)."""
        if not isinstance(self._connect_hooks, list):
            self._connect_hooks = []
        self._connect_hooks.append(hook)
        return hook

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called (the client will not connect again)."""
        return self._closed

    def on_token_expire(self, hook: Hook) -> Hook:
        """Call ``hook(client)`` when a call is refused with "token is expired".

        The hook is expected to renew :attr:`auth` (Kontrol clients install one); the call
        is then made once more. Without hooks the error goes straight to the caller.
        """
        if not isinstance(self._token_expire_hooks, list):
            self._token_expire_hooks = []
        self._token_expire_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: Hook) -> Hook:
        """Call ``hook(client)`` whenever the connection drops."""
        if not isinstance(self._disconnect_hooks, list):
            self._disconnect_hooks = []
        self._disconnect_hooks.append(hook)
        return hook

    # ------------------------------------------------------------ dialing

    def _task_group(self) -> TaskGroup:
        if self._own_task_group is not None:
            return self._own_task_group
        group = self.kite._tasks.group
        if group is None:
            raise RuntimeError(
                "dialing needs a running kite or a client context: "
                "use 'async with kite.new_client(url) as client'"
            )
        return group

    async def __aenter__(self) -> Client:
        self._own_task_group = await self._own_tasks.open()
        try:
            if self._reconnect:
                await self.dial_forever()
            else:
                await self.dial()
        except BaseException:
            self._own_task_group = None
            await self._own_tasks.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        self._own_task_group = None
        await self._own_tasks.aclose()

    async def dial(self, timeout: float | None = None) -> None:
        """Connect once; raise :class:`DialError` on failure. Dialing twice is harmless."""
        if self.connected:
            return
        if self.url is None:
            raise DialError("this client has no URL to dial")
        group = self._task_group()
        connection = await self._open(timeout)
        self.connection = connection  # usable at once; its tasks start with _serve
        group.start_soon(self._serve, connection)

    async def dial_forever(self) -> None:
        """Connect, and reconnect with exponential backoff whenever the connection drops.

        Returns once the first connection is up; reconnection goes on until :meth:`aclose`.
        """
        self._reconnect = True
        if self._reconnect_scope is None:
            await self._task_group().start(self._reconnect_loop)
        await self._connected_event.wait()

    async def ensure_connected(self, timeout: float) -> None:
        """Be connected within ``timeout`` seconds, or raise :class:`DialError` saying why.

        Unlike :meth:`dial_forever`, a failed dial is not retried here: a refused connection
        is reported at once, a silent peer after ``timeout`` (:class:`DialTimeoutError`).
        Without a connection loop yet, each URL is dialed once; a client made to reconnect
        then keeps reconnecting in the background as :meth:`dial_forever` does. If its loop
        is waiting between attempts, it tries again now and the outcome is reported.
        """
        if self.connected:
            return
        if self.url is None:
            raise DialError("this client has no URL to dial")
        if self._closed:
            raise DialError(f"can't connect to {self.url}: the client is closed")
        try:
            with anyio.fail_after(timeout):
                if self._reconnect_scope is not None or self._attempt is not None:
                    await self._next_attempt()
                else:
                    await self._first_attempt(timeout)
        except DialError:
            raise
        except TimeoutError:
            raise DialTimeoutError(
                f"can't connect to {self.url}: timed out after {timeout:g}s"
            ) from None

    async def _first_attempt(self, timeout: float) -> None:
        """Dial each URL once; serve the first connection (reconnecting afterwards if asked)."""
        group = self._task_group()
        self._attempt = anyio.Event()
        try:
            errors: list[DialError] = []
            for _ in range(len(self.urls)):
                try:
                    connection = await self._open(timeout)
                except DialError as exc:
                    self.last_dial_error = exc
                    errors.append(exc)
                    self._fail_over()
                    continue
                self.last_dial_error = None
                self.connection = connection
                if self._reconnect:
                    with anyio.CancelScope(shield=True):  # the connection must not be lost
                        await group.start(self._reconnect_loop, connection)
                else:
                    group.start_soon(self._serve, connection)
                return
            if len(errors) == 1:
                raise errors[0]
            raise DialError("; ".join(error.message for error in errors))
        finally:
            self._attempt_ended()

    async def _next_attempt(self) -> None:
        """Wait for the dial in progress (or make the reconnect loop retry now) and report it."""
        if self._attempt is None:
            self._attempt = anyio.Event()  # the reconnect loop sets it after its next attempt
        attempt = self._attempt
        if self._pause_scope is not None:
            self._pause_scope.cancel()
        await attempt.wait()
        if self.connected:
            return
        raise self.last_dial_error or DialError(f"can't connect to {self.url}")

    def _attempt_ended(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.set()

    async def _reconnect_loop(
        self, first: Connection | None = None, *, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.CancelScope() as scope:
            self._reconnect_scope = scope
            task_status.started()
            try:
                while not self._closed:
                    if first is not None:
                        connection, first = first, None
                    else:
                        try:
                            connection = await self._open(None)
                        except DialError as exc:
                            self.last_dial_error = exc
                            self._fail_over()
                            delay = self.backoff.next()
                            logger.info("%s; retrying %s in %.2fs", exc, self.url, delay)
                            self._attempt_ended()
                            with anyio.CancelScope() as pause:  # cancelled to retry at once
                                self._pause_scope = pause
                                await anyio.sleep(delay)
                            self._pause_scope = None
                            continue
                        self.last_dial_error = None
                        self.backoff.reset()
                        self.connection = connection
                        self._attempt_ended()
                    await self._serve(connection)
                    self._fail_over()  # the peer went away: try the next URL first
            finally:
                self._attempt_ended()
        self._reconnect_scope = None

    async def _open(self, timeout: float | None) -> Connection:
        assert self.url is not None
        url = self.url
        kite = self.kite
        transports = kite.transports_for(url, self.transport)
        handshake = kite.config.handshake_timeout if timeout is None else timeout
        options = DialOptions(
            handshake_timeout=handshake,
            max_message_size=kite.config.max_message_size,
            ssl_context=kite.ssl_context_for(url),
        )
        transport = transports[0]
        try:
            if len(transports) == 1 and enforces_handshake_timeout(transport):
                # the transport bounds its dial by options.handshake_timeout (raising
                # TimeoutError) itself: a second timer here would only cost time
                stream = await transport.connect(url, options)
            else:
                with anyio.fail_after(handshake):
                    transport, stream = await self._connect_any(transports, options)
        except TimeoutError:
            raise DialTimeoutError(
                f"can't connect to {url}: timed out after {handshake:g}s"
            ) from None
        except Exception as exc:  # OSError, SendError, a transport's own handshake errors
            if _refused(exc):
                raise DialError(f"connection refused to {url}") from exc
            hint = tls_failure_hint(exc, is_secure_url(url))
            if hint is not None:  # say why in words, the SSL error text stays in the cause
                raise DialError(f"can't connect to {url}: {hint}") from exc
            raise DialError(f"can't connect to {url}: {exc}") from exc
        return Connection(
            stream,
            functools.partial(kite._serve_call, self),  # no extra frame per call
            peer=PeerInfo(transport.name, url),
            dialed=True,
            max_message_size=kite.config.max_message_size,
            max_callbacks=kite.config.max_callbacks,
            max_pending_calls=kite.config.max_pending_calls,
        )

    async def _connect_any(
        self, transports: list[Transport], options: DialOptions
    ) -> tuple[Transport, MessageStream]:
        """Dial with the first of ``transports`` that the server speaks, and remember it.

        Only :class:`TransportMismatchError` moves on to the next transport: a refused or
        silent peer would refuse or ignore them all.
        """
        url = self.url
        assert url is not None
        memory = self.kite.dial_memory
        mismatches: list[str] = []
        for transport in transports:
            try:
                stream = await transport.connect(url, options)
            except TransportMismatchError as exc:
                logger.debug("%s: %s does not serve %s: %s", self, url, transport.name, exc)
                mismatches.append(f"{transport.name}: {exc}")
                continue
            if len(transports) > 1:
                memory.remember(url, transport.name)
            return transport, stream
        memory.forget(url)
        raise TransportMismatchError("; ".join(mismatches))

    async def _serve(self, connection: Connection) -> None:
        """Run ``connection`` to its end, firing the connect/disconnect hooks."""
        self.connection = connection
        self._serving = True
        if self._connected_event_ is not None:
            self._connected_event_.set()
        await self._fire(self._connect_hooks)
        await self.kite._client_connected(self)
        try:
            await connection.run()
        finally:
            self._serving = False
            self._connected_event_ = None
            if self._disconnect_hooks or self.kite._disconnect_hooks:
                with anyio.CancelScope(shield=True):
                    await self._fire(self._disconnect_hooks)
                    await self.kite._client_disconnected(self)
            else:
                # No hook that could wait: nothing here can be cancelled, no shield needed.
                await self.kite._client_disconnected(self)

    async def _fire(self, hooks: Sequence[Hook]) -> None:
        for hook in hooks:
            try:
                outcome = hook(self)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("%r: hook %r raised", self, hook)

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting. Idempotent."""
        self._closed = True
        # close first: the reconnect task reads the peer's close reply (else we wait it out)
        if self.connection is not None:
            await self.connection.aclose("client closed")
        if self._reconnect_scope is not None:
            self._reconnect_scope.cancel()

    async def close(self) -> None:
        """Alias of :meth:`aclose`, kept for existing callers."""
        await self.aclose()

    # ------------------------------------------------------------ calling

    def tell(self, method: str, *args: Any, timeout: Any = DEFAULT_TIMEOUT) -> Awaitable[Any]:
        """Call ``method`` on the remote kite with ``args`` and return its result.

        ``timeout`` defaults to the kite's ``config.timeout``; ``None`` waits for ever (a
        disconnect still ends the wait). Functions among ``args`` become callbacks the
        remote side can invoke. Errors arrive as :class:`~kitecore.KiteError` subclasses.
        Use it as ``await client.tell(...)``; the kite's client interceptors wrap the call.
        """
        # Not ``async def``: it hands back the coroutine of the path taken, so a kite without
        # interceptors pays no extra frame for the seam.
        if self.kite._client_hooked:  # client interceptors and/or observers (inline: no frame)
            kite = self.kite
            call = ClientCall(self, method, args)
            observed = call if kite._client_observe is not None else None
            chain = kite._client_chain  # (the interceptors, called directly: no frame between)
            if chain is not None:
                # (a partial, not a lambda: no closure cells in this function, whose plain
                # path would pay for them too)
                proceed = functools.partial(self._proceed, method, call, timeout, observed)
                return chain(call, proceed)
            return self._tell(method, args, timeout, call.metadata, observed)
        return self._tell(method, args, timeout, None)

    def _proceed(
        self, method: str, call: ClientCall, timeout: Any, observed: ClientCall | None
    ) -> Awaitable[Any]:
        """The call inside the client interceptors (their ``proceed``): sent with the
        arguments and metadata the interceptors left in ``call``."""
        return self._tell(method, call.args, timeout, call.metadata, observed)

    async def _tell(
        self,
        method: str,
        args: tuple[Any, ...],
        timeout: Any,
        metadata: dict[str, str] | None,
        observed: ClientCall | None = None,
    ) -> Any:
        """Send the call and wait for its answer; ``observed``: the call the kite's client
        observers watch (started here, around the request itself)."""
        if observed is not None:
            observer = self.kite._client_observe
            assert observer is not None  # (a call is observed only when the kite has observers)
            start, end = observer
            state = start(observed)
            args, metadata = observed.args, observed.metadata
        try:
            if timeout is DEFAULT_TIMEOUT:
                timeout = self.kite.config.timeout
            connection = self.connection
            if connection is None or connection.closed:
                connection = await self._wait_connected(timeout)
            with_args = list(args)
            callbacks: dict[str, Path] = {}
            for arg in with_args:  # scrubbed only when a function may be among them
                if type(arg) not in SCALAR_TYPES:
                    with_args, user_callbacks = connection.scrub(with_args)
                    callbacks = {
                        key: [0, "withArgs", *path] for key, path in user_callbacks.items()
                    }
                    break
            # the identity and authentication are encoded once, not for every call
            auth = self.auth
            identity = self.kite.identity_wire
            encoder = self._request_encoder
            if encoder is None or encoder.kite is not identity or self._encoder_auth is not auth:
                encoder = RequestEncoder(identity, None if auth is None else auth.to_wire())
                self._request_encoder, self._encoder_auth = encoder, auth
            pending, callback_id = connection.call(
                method,
                encoder,
                with_args,
                callbacks,
                {METADATA_FIELD: metadata} if metadata else None,
            )
            # (connection.wait_response, inlined: no coroutine of its own per call)
            wait = timeout if timeout is None or timeout > 0 else None
            try:
                result = await pending.waiter.wait(wait)
            except WaitTimeout:
                connection.forget_callback(callback_id)
                raise KiteTimeoutError(f'No response to "{method}" method in {wait:g}s') from None
            except AuthenticationError as exc:
                connection.forget_callback(callback_id)  # (an error reply: gone already)
                if (
                    not self._token_expire_hooks
                    or "token is expired" not in exc.message
                    or _RETRYING_AFTER_RENEWAL.get()
                ):
                    raise
                renew = True
            except BaseException:  # cancelled, or an error reply (already gone from the table)
                connection.forget_callback(callback_id)
                raise
            else:
                renew = False
            if renew:
                result = await self._retry_with_new_token(method, args, timeout, metadata)
        except BaseException as exc:
            if observed is not None:
                end(observed, state, exc)
            raise
        if observed is not None:
            end(observed, state, None)
        return result

    async def _retry_with_new_token(
        self,
        method: str,
        args: tuple[Any, ...],
        timeout: Any,
        metadata: dict[str, str] | None,
    ) -> Any:
        """Run the token-expired hooks, then make the refused call once more (inside the
        same interceptors: it is still one call)."""
        logger.debug("%r: %s was refused with an expired token; renewing", self, method)
        await self._fire(self._token_expire_hooks)
        reset = _RETRYING_AFTER_RENEWAL.set(True)
        try:
            return await self._tell(method, args, timeout, metadata)
        finally:
            _RETRYING_AFTER_RENEWAL.reset(reset)

    async def _wait_connected(self, timeout: float | None) -> Connection:
        if self._closed:
            raise SendError("can't send, client is closed")
        if not self._reconnect:
            raise SendError("can't send, session is not established yet")
        wait = math.inf if timeout is None or timeout <= 0 else timeout
        with anyio.move_on_after(wait):
            await self._connected_event.wait()
        connection = self.connection
        if connection is None or connection.closed:
            raise SendError(f"can't send, not connected to {self.url} within {wait:g}s")
        return connection
