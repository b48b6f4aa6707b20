"""A kite's connection to Kontrol: registration and discovery (protocol.md §7.1, §7.3).

:class:`KontrolClient` dials ``config.kontrol_url`` with reconnection, authenticating with the
kite's kite.key (``kiteKey``). Every call it makes is bounded by ``config.timeout``: reaching
Kontrol and waiting for its answer each take at most that long. A call finds Kontrol refusing
connections at once (:class:`~kitecore.DialError` "connection refused to <url>"); only
:meth:`KontrolClient.register_forever` keeps trying, with backoff.

It works inside a running kite (``async with kite:``) or, for a kite that only calls others,
as its own context (``async with kite.kontrol_client:``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from kitecore.backoff import Backoff
from kitecore.client import Client, DialError, DialTimeoutError
from kitecore.discovery.keys import KEY_REFRESH_INTERVAL, KEY_RENEW_INTERVAL, KeyRenewer
from kitecore.discovery.messages import (
    KiteRecord,
    NoKitesError,
    RegisterResult,
    get_kites_args,
    get_token_args,
    map_kontrol_error,
    parse_get_kites_result,
    parse_register_result,
    register_args,
    to_query,
)
from kitecore.discovery.renewer import RENEW_BEFORE, RETRY_INTERVAL, TokenRenewer
from kitecore.discovery.watch import DEFAULT_POLL_INTERVAL, KiteWatch
from kitecore.protocol.envelope import Authentication
from kitecore.protocol.errors import (
    InvalidResponseError,
    KiteError,
    KiteTimeoutError,
    ShuttingDownError,
)
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.taskgroups import OwnedTaskGroup

if TYPE_CHECKING:
    from kitecore.kite import Kite

__all__ = ["KontrolClient", "RegisterHook"]

logger = logging.getLogger(__name__)

#: ``hook(result)`` after each successful registration; may be async.
RegisterHook = Callable[[RegisterResult], Any]

QueryLike = Query | KiteIdentity | Mapping[str, str] | None


def registration_backoff() -> Backoff:
    """The waits between failed registrations: 1 s growing to 30 s (Go retries every 10 s)."""
    return Backoff(initial=1.0, multiplier=1.5, randomization=0.5, maximum=30.0)


class KontrolClient:
    """Registers a kite with Kontrol and finds other kites through it.

    ``url`` defaults to ``kite.config.kontrol_url`` (read when connecting). ``renew_before``
    and ``retry_interval`` tune the token renewers of the clients :meth:`get_kites` returns.
    While :meth:`register_forever` keeps the kite registered, :attr:`key_renewer` keeps
    ``config.kontrol_key`` current across Kontrol key rotations (:mod:`kitecore.discovery.keys`):
    it polls ``getKey`` every ``key_renew_interval`` seconds, and when the kite refuses a token
    of its Kontrol it asks at once (at most every ``key_refresh_interval`` seconds).
    """

    def __init__(
        self,
        kite: Kite,
        *,
        url: str | None = None,
        renew_before: float = RENEW_BEFORE,
        retry_interval: float = RETRY_INTERVAL,
        key_renew_interval: float = KEY_RENEW_INTERVAL,
        key_refresh_interval: float = KEY_REFRESH_INTERVAL,
    ) -> None:
        self.kite = kite
        self._url = url
        self.renew_before = renew_before
        self.retry_interval = retry_interval
        #: The URL the kite registered (or is trying to register) last.
        self.register_url: str | None = None
        #: Kontrol's answer to the last successful registration.
        self.last_registration: RegisterResult | None = None
        self._client: Client | None = None
        self._client_group: TaskGroup | None = None
        self._register_hooks: list[RegisterHook] = []
        self._registered: anyio.Event | None = None
        self._register_scope: anyio.CancelScope | None = None
        self._own_tasks = OwnedTaskGroup()
        #: Keeps ``config.kontrol_key`` current while the kite stays registered.
        self.key_renewer = KeyRenewer(
            self, interval=key_renew_interval, refresh_interval=key_refresh_interval
        )

    def __repr__(self) -> str:
        return f"<KontrolClient {self.url or '(no Kontrol URL)'}>"

    # ------------------------------------------------------------ state

    @property
    def url(self) -> str:
        """Kontrol's URL: the one given, else ``config.kontrol_url``."""
        return self._url or self.kite.config.kontrol_url

    @property
    def client(self) -> Client | None:
        """The (reconnecting) client of Kontrol, once a call has been made."""
        return self._client

    def _client_for(self, group: TaskGroup) -> Client:
        """The client of Kontrol reconnecting in ``group``: a fresh one after :meth:`aclose` or
        when the kite was restarted (a new task group)."""
        client = self._client
        if client is None or client.closed or self._client_group is not group:
            client = Client(self.kite, self.url)
            client._reconnect = True
            client._own_task_group = group  # its reconnect loop lives as long as we do
            self._client = client
            self._client_group = group
        return client

    @property
    def registered(self) -> anyio.Event:
        """Set once a registration has succeeded (Go's ``KontrolReadyNotify``)."""
        if self._registered is None:
            self._registered = anyio.Event()
        return self._registered

    _registered_on: Any = None

    @property
    def is_registered(self) -> bool:
        """Whether this kite is registered now: a registration succeeded on the connection to
        Kontrol that is still open (Kontrol deregisters a kite when that connection closes)."""
        connection = self._registered_on
        return connection is not None and not connection.closed

    def on_register(self, hook: RegisterHook) -> RegisterHook:
        """Call ``hook(result)`` after every successful registration (usable as a decorator)."""
        self._register_hooks.append(hook)
        return hook

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> KontrolClient:
        await self._own_tasks.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        await self._own_tasks.aclose()

    async def aclose(self) -> None:
        """Stop registering and close the connection to Kontrol. Idempotent."""
        if self._register_scope is not None:
            self._register_scope.cancel()
            self._register_scope = None
        if self._client is not None:
            await self._client.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`, kept for existing callers."""
        await self.aclose()

    def _group(self) -> TaskGroup:
        group = self._own_tasks.group or self.kite._tasks.group
        if group is None:
            raise RuntimeError(
                "talking to Kontrol needs a running kite ('async with kite') "
                "or 'async with kite.kontrol_client'"
            )
        return group

    async def _connect(self, timeout: float) -> Client:
        if not self.url:
            raise ValueError(
                "no Kontrol URL: set KITE_KONTROL_URL or get a kite.key with 'kite register'"
            )
        key = self.kite.config.kite_key
        if not key:
            raise ValueError(
                "no kite.key to authenticate to Kontrol with: run 'kite register' "
                "or set config.kite_key"
            )
        client = self._client_for(self._group())
        if client.auth is None or client.auth.key != key:
            client.auth = Authentication("kiteKey", key)
        if client.connected:
            return client
        # one attempt, reported at once (a refused connection must not look like a wait);
        # once connected, the client reconnects by itself and register_forever re-registers
        try:
            await client.ensure_connected(timeout)
        except DialTimeoutError:
            raise KiteTimeoutError(
                f"can't connect to Kontrol at {self.url} in {timeout:g}s"
            ) from None
        except DialError as exc:
            raise DialError(f"can't reach Kontrol: {exc.message}") from exc
        return client

    async def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on Kontrol, bounded by ``config.timeout``; Kontrol's "no kites
        found" is raised as :class:`NoKitesError`, its other errors as they come.

        A Kontrol that is shutting down did not run the call (:class:`ShuttingDownError`):
        with more than one Kontrol URL, the call is made once more on the next Kontrol, as
        soon as the leaving one has closed the connection (within ``config.timeout``).
        """
        timeout = self.kite.config.timeout
        client = await self._connect(timeout)
        try:
            try:
                return await client.tell(method, *args, timeout=timeout)
            except ShuttingDownError as exc:
                client = await self._next_kontrol(client, timeout, exc)
                return await client.tell(method, *args, timeout=timeout)
        except KiteError as exc:
            raise map_kontrol_error(exc) from None

    async def _next_kontrol(
        self, client: Client, timeout: float, refusal: ShuttingDownError
    ) -> Client:
        """The client connected to the next Kontrol URL once the leaving Kontrol has closed
        its connection; ``refusal`` is raised again when there is no other URL or the
        connection stays open past ``timeout``."""
        connection = client.connection
        if len(client.urls) < 2 or connection is None:
            raise refusal
        leaving = client.url
        with anyio.move_on_after(timeout):
            await connection.wait_closed()
        if not connection.closed:
            raise refusal
        logger.info("Kontrol at %s is shutting down; calling the next Kontrol", leaving)
        return await self._connect(timeout)

    # ------------------------------------------------------------ registration

    def _own_url(self, url: str | None) -> str:
        url = url or self.register_url or self.kite.url
        if not url:
            raise ValueError("no URL to register: pass one, or register a kite that is serving")
        return url

    async def register(self, url: str | None = None) -> RegisterResult:
        """Register the kite at ``url`` (default: the URL it serves on) with Kontrol once.

        If Kontrol answers with a re-signed kite.key and a new public key (it rotated its
        keys), they replace ``config.kite_key`` and ``config.kontrol_key`` in memory.
        """
        url = self._own_url(url)
        self.register_url = url
        result = parse_register_result(await self.call("register", register_args(url)))
        config = self.kite.config
        if result.kite_key and result.kite_key != config.kite_key:
            logger.info("Kontrol re-signed our kite.key (key rotation); using the new one")
            config.kite_key = result.kite_key
        if result.public_key and result.public_key != config.kontrol_key:
            logger.info("Kontrol's public key changed; using the new one")
            config.kontrol_key = result.public_key
        self.last_registration = result
        self._registered_on = self._client.connection if self._client is not None else None
        logger.info("registered %s to Kontrol at %s", url, self.url)
        self.registered.set()
        for hook in self._register_hooks:
            try:
                outcome = hook(result)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("%r: register hook %r raised", self, hook)
        return result

    async def register_forever(
        self, url: str | None = None, *, backoff: Backoff | None = None
    ) -> None:
        """Keep the kite registered: register now and after every reconnect to Kontrol.

        Returns at once; failures are retried with exponential ``backoff`` in the background
        until :meth:`aclose`. Await :attr:`registered` to know the first attempt succeeded.
        """
        self.register_url = self._own_url(url)
        if self._register_scope is not None:
            return  # the loop already runs; it picks up the new URL on its next attempt
        group = self._group()
        scope = anyio.CancelScope()
        self._register_scope = scope
        self.key_renewer.install()
        group.start_soon(self._stay_registered, scope, backoff or registration_backoff())

    def _stopping(self, used: Client | None) -> bool:
        """True when the kite (or this client) is shutting down: no group left to run in, or
        the client ``used`` by the last registration was closed on purpose (not just lost)."""
        if (self._own_tasks.group or self.kite._tasks.group) is None:
            return True
        return used is not None and used.closed

    async def _stay_registered(self, scope: anyio.CancelScope, backoff: Backoff) -> None:
        """The registration loop and the key renewer's polling, both ended by ``scope``."""
        try:
            with scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(self.key_renewer.run)
                    await self._register_loop(backoff)
                    group.cancel_scope.cancel()
        finally:
            if self._register_scope is scope:
                self._register_scope = None  # a later register_forever starts afresh

    async def _register_loop(self, backoff: Backoff) -> None:
        """Register, wait for the connection to drop, register again; returns on shutdown."""
        used: Client | None = None
        while True:
            try:
                await self.register()
            except Exception as exc:
                if self._stopping(used):
                    logger.debug("registration to Kontrol ended: the kite is stopping (%s)", exc)
                    return
                delay = backoff.next()
                logger.warning(
                    "registering to Kontrol at %s failed, retrying in %.1fs: %s",
                    self.url,
                    delay,
                    exc,
                )
                await anyio.sleep(delay)
                continue
            backoff.reset()
            used = self._client
            connection = used.connection if used is not None else None
            if connection is not None:
                await connection.wait_closed()
            if self._stopping(used):
                logger.debug("registration to Kontrol ended: the kite closed the connection")
                return
            logger.info("lost Kontrol at %s; registering again once reconnected", self.url)

    # ------------------------------------------------------------ discovery

    async def get_kites(self, query: QueryLike = None, /, **fields: str) -> list[Client]:
        """The kites matching ``query`` (a :class:`Query`, a mapping, or keyword fields).

        Returns clients not yet dialed (``async with client:`` or ``await client.dial()``),
        each carrying its kite's identity and a Kontrol token that is renewed while
        connected. Raises :class:`NoKitesError` when nothing matches.
        """
        wanted = to_query(query, **fields)
        records = parse_get_kites_result(await self.call("getKites", get_kites_args(wanted)))
        if not records:
            raise NoKitesError("no kites found")
        return [self.client_for_record(record) for record in records]

    def client_for_record(self, record: KiteRecord) -> Client:
        """An undialed client for a kite Kontrol listed, with its token kept renewed."""
        auth = Authentication("token", record.token) if record.token else None
        client = Client(self.kite, record.url, auth=auth, remote_kite=record.kite)
        if auth is not None:
            TokenRenewer(
                self,
                client,
                renew_before=self.renew_before,
                retry_interval=self.retry_interval,
            ).install()
        return client

    def watch_kites(
        self, query: QueryLike = None, /, *, poll_interval: float | None = None, **fields: str
    ) -> KiteWatch:
        """A :class:`~kitecore.discovery.watch.KiteWatch` of the kites matching ``query``:
        ``async with client.watch_kites(...) as watch: async for event in watch: ...``."""
        if poll_interval is None:
            poll_interval = DEFAULT_POLL_INTERVAL
        return KiteWatch(self, to_query(query, **fields), poll_interval=poll_interval)

    async def get_token(self, kite: QueryLike, *, force: bool = False) -> str:
        """A token to call the one kite ``kite`` names (an identity, a query or a mapping).

        ``force`` makes Kontrol sign a fresh token instead of its cached one.
        """
        result = await self.call("getToken", get_token_args(to_query(kite), force=force))
        if not isinstance(result, str) or not result:
            raise InvalidResponseError(f"getToken answered {result!r}, not a token")
        return result

    async def get_key(self) -> str:
        """Kontrol's current public key (PEM); it also becomes ``config.kontrol_key``."""
        result = await self.call("getKey")
        if not isinstance(result, str) or not result.strip():
            raise InvalidResponseError(f"getKey answered {result!r}, not a public key")
        self.kite.config.kontrol_key = result
        return result
