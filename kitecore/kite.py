"""The :class:`Kite`: an identity, a set of methods, a server, and a factory of clients."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import logging
import os
import signal
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio

from kitecore.auth import Authenticator
from kitecore.client import Client
from kitecore.config import Config
from kitecore.connection import Connection, RemoteCallback
from kitecore.idle import close_idle, close_idle_connections
from kitecore.interceptors import Chain as InterceptorChain
from kitecore.interceptors import (
    ClientInterceptor,
    ClientObserver,
    ServerCall,
    ServerInterceptor,
    ServerObserver,
    chain_of,
    combine_observers,
)
from kitecore.logcontext import current_request
from kitecore.methods import Handler, HandlerFunc, Method, MethodHandling, Middleware, run_chain
from kitecore.protocol.envelope import (
    CallOptionsError,
    parse_call_options,
    response_arguments,
)
from kitecore.protocol.errors import (
    AuthenticationError,
    CallbackLimitError,
    GenericError,
    KiteError,
    MethodNotFoundError,
    ShuttingDownError,
)
from kitecore.protocol.identity import KiteIdentity, forget_recent_identities
from kitecore.request import Request
from kitecore.taskgroups import OwnedTaskGroup
from kitecore.tls import client_context, is_secure_url, server_context
from kitecore.transport import PeerInfo, Transport
from kitecore.transports.choice import AUTO, DialMemory, candidates

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from kitecore.asgi import KiteASGIApp
    from kitecore.discovery import KiteWatch, KontrolClient, RegisterResult
    from kitecore.http.server import HTTPServer
    from kitecore.plugins import PluginRegistry
    from kitecore.pool import Pool

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Callable[..., Any])
ClientHook = Callable[[Client], Any]


class ListenError(OSError):
    """A kite could not listen on its address (the port is taken, the IP is not this
    machine's...); the message names the address: ``cannot listen on 0.0.0.0:6000: ...``."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        if cause.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another process listens there)"
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(cause.errno, f"cannot listen on {address}: {reason}")
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)


class Kite:
    """A kite: serves named methods and calls other kites.

    >>> k = Kite("first", "1.0.0")
    >>> @k.handle("square")
    ... async def square(r):
    ...     return r.args.one(float) ** 2

    ``k.run()`` blocks serving (like Go's ``Run``); inside a program use
    ``async with k: ...`` (serves until the block ends) or ``await k.serve()``.
    """

    def __init__(
        self,
        name: str,
        version: str,
        *,
        config: Config | None = None,
        plugins: PluginRegistry | None = None,
    ) -> None:
        self.config = Config.from_env() if config is None else config
        if not name or "/" in name:
            raise ValueError(f"invalid kite name {name!r}")
        if len(version.split(".")) != 3:
            raise ValueError(f"kite version must have 3 dot-separated parts, not {version!r}")
        self.name = name
        self.version = version
        #: Fresh per process, like Go's ``Kite.Id``.
        self.id = str(uuid.uuid4())
        self.hostname = socket.gethostname() or "localhost"
        if plugins is None:
            from kitecore.plugins import get_registry

            plugins = get_registry()
        self.plugins = plugins
        self.method_handling = MethodHandling.RETURN_METHOD
        self.middleware = Middleware()
        self.authenticators: dict[str, Authenticator] = {}
        self._methods: dict[str, Method] = {}
        self._connect_hooks: list[ClientHook] = []
        self._first_request_hooks: list[ClientHook] = []
        self._disconnect_hooks: list[ClientHook] = []
        self._tasks = OwnedTaskGroup()
        self._server: HTTPServer | None = None
        self._clients: set[Client] = set()
        self._clients_peak = 0  # most clients at once since the set was last rebuilt
        self._http_routes: list[tuple[Any, Any, Any]] = []
        self._websocket_routes: list[tuple[Any, Any]] = []
        self.url = ""
        self.port = 0
        #: Set by :meth:`shutdown`: new calls are refused, ``/kite/health`` answers 503.
        self.shutting_down = False
        self._shutdown_done: anyio.Event | None = None
        self._started_at = time.monotonic()
        #: Set once the server listens (created when the kite starts).
        self.ready: anyio.Event | None = None
        self._identity_cache: tuple[tuple[str, ...], dict[str, str]] | None = None
        #: Per URL, the transport that opened the last connection there (tried first in ``auto``).
        self.dial_memory = DialMemory()
        # tuples, empty when none: the per-call check is one falsy test
        self._server_interceptors: tuple[ServerInterceptor, ...] = ()
        self._client_interceptors: tuple[ClientInterceptor, ...] = ()
        # the interceptors of each side as one chain(call, innermost), None when there are none
        self._server_chain: InterceptorChain | None = None
        self._client_chain: InterceptorChain | None = None
        self._server_observers: tuple[ServerObserver, ...] = ()
        self._client_observers: tuple[ClientObserver, ...] = ()
        # the observers of each side as one (start, end) pair, None when there are none
        self._server_observe: ServerObserver | None = None
        self._client_observe: ClientObserver | None = None
        #: Whether the kite's calls (served, made with ``tell``) have interceptors or observers.
        self._server_hooked = False
        self._client_hooked = False
        self._client_ssl: tuple[tuple[object, ...], ssl.SSLContext] | None = None

        from kitecore.builtins import register_builtins

        register_builtins(self)
        for auth_type, factory in plugins.authenticators.items():
            self.authenticators[auth_type] = factory(self)
        plugins.pm.hook.kite_register_methods(kite=self)
        plugins.pm.hook.kite_register_interceptors(kite=self, register=self.add_interceptor)

    def __repr__(self) -> str:
        return f"<Kite {self.identity.path}>"

    # ------------------------------------------------------------ identity

    @property
    def identity(self) -> KiteIdentity:
        """This kite's 7-field identity (username etc. read from the config now)."""
        c = self.config
        return KiteIdentity(
            username=c.username,
            environment=c.environment,
            name=self.name,
            version=self.version,
            region=c.region,
            hostname=self.hostname,
            id=self.id,
        )

    @property
    def identity_wire(self) -> dict[str, str]:
        """The identity as sent in every request's ``kite`` field (cached while unchanged)."""
        c = self.config
        key = (c.username, c.environment, c.region, self.hostname, self.id)
        cached = self._identity_cache
        if cached is None or cached[0] != key:
            cached = (key, self.identity.to_wire())
            self._identity_cache = cached
        return cached[1]

    # ------------------------------------------------------------ methods

    @overload
    def handle(
        self, name: str, handler: None = None, *, auth: bool | None = None
    ) -> Callable[[H], H]: ...
    @overload
    def handle(self, name: str, handler: Handler, *, auth: bool | None = None) -> Method: ...
    def handle(
        self, name: str, handler: Handler | None = None, *, auth: bool | None = None
    ) -> Method | Callable[[H], H]:
        """Register ``handler`` for ``name``; without ``handler``, a decorator.

        ``auth=None`` follows ``config.disable_authentication`` when a call arrives; pass
        ``auth=False`` to serve the method to anyone. Returns the :class:`Method` (when
        called with a handler) for chaining ``.throttle()``, ``.pre_handle()`` etc.
        """
        if handler is None:

            def decorator(function: H) -> H:
                self.handle(name, function, auth=auth)
                return function

            return decorator
        method = Method(name, handler, auth=auth)
        if name in self._methods:
            logger.debug("method %s replaced", name)
        self._methods[name] = method
        return method

    def handle_http(self, path: Any, handler: Any, *, methods: Any = None) -> None:
        """Serve plain HTTP at ``path`` (an exact path or a compiled regex) on this kite's
        server, beside the kite's own routes (Go's ``HandleHTTP``).

        ``handler`` is ``async def handler(request, response)`` of :mod:`kitecore.http`;
        ``methods`` limits the accepted HTTP methods. Routes added while the kite serves are
        live at once.
        """
        self._http_routes.append((path, handler, methods))
        if self._server is not None:
            self._server.add_route(path, handler, methods=methods)

    @property
    def server(self) -> HTTPServer | None:
        """The HTTP server this kite listens with, while it serves (``None`` otherwise); for
        plugins that mount more routes (``SockJSService.mount(kite.server, "/proxy")``)."""
        return self._server

    def handle_websocket(self, path: Any, handler: Any) -> None:
        """Serve WebSocket upgrades at ``path`` (an exact path or a compiled regex) on this
        kite's server, beside the kite's own routes (the WebSocket twin of :meth:`handle_http`).

        ``handler`` is ``async def handler(ws, request)`` of :mod:`kitecore.http`. Routes added
        while the kite serves are live at once.
        """
        self._websocket_routes.append((path, handler))
        if self._server is not None:
            self._server.add_websocket_route(path, handler)

    def asgi_app(
        self, *, url: str | None = None, prefix: str = "/kite", register: bool | None = None
    ) -> KiteASGIApp:
        """This kite as an ASGI 3 application, for uvicorn, hypercorn or a Starlette/FastAPI
        app (``app.mount("/kite", kite.asgi_app())``) instead of the kite's own server.

        It serves the transports' routes under ``prefix`` (raw WebSocket; SockJS when its
        plugin is installed), ``<prefix>/health`` and the :meth:`handle_http` /
        :meth:`handle_websocket` routes. Lifespan startup starts the kite and, given its public
        ``url``, registers it with Kontrol when one is configured (``register=None``) or
        ``register=True``; lifespan shutdown is :meth:`shutdown`. See
        :class:`kitecore.asgi.KiteASGIApp`.
        """
        from kitecore.asgi import KiteASGIApp

        return KiteASGIApp(self, url=url, prefix=prefix, register=register)

    def method(self, name: str) -> Method:
        """The registered :class:`Method` called ``name`` (KeyError if none)."""
        return self._methods[name]

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    def pre_handle(self, handler: Handler) -> Handler:
        """Add a kite-wide pre handler (runs after the method's own)."""
        self.middleware.pre_handlers.append(HandlerFunc(handler))
        return handler

    def post_handle(self, handler: Handler) -> Handler:
        self.middleware.post_handlers.append(HandlerFunc(handler))
        return handler

    def final_func(self, function: Callable[..., Any]) -> Callable[..., Any]:
        self.middleware.final_funcs.append(HandlerFunc(function))
        return function

    def add_interceptor(
        self,
        *,
        server: ServerInterceptor | None = None,
        client: ClientInterceptor | None = None,
    ) -> None:
        """Wrap every call this kite serves with ``server`` and every call its clients make
        with ``client`` (:mod:`kitecore.interceptors`); either may be omitted. Interceptors
        run in the order added, the first one outermost."""
        if server is not None:
            self._server_interceptors = (*self._server_interceptors, server)
            self._server_chain = chain_of(self._server_interceptors)
            self._server_hooked = True
        if client is not None:
            self._client_interceptors = (*self._client_interceptors, client)
            self._client_chain = chain_of(self._client_interceptors)
            self._client_hooked = True

    def add_observer(
        self,
        *,
        server: ServerObserver | None = None,
        client: ClientObserver | None = None,
    ) -> None:
        """Watch every call this kite serves with ``server`` and every call its clients make
        with ``client``, each a ``(start, end)`` pair of plain functions (observers,
        :mod:`kitecore.interceptors`: the cheap form of an interceptor that only watches);
        either may be omitted. Starts run in the order added, ends in reverse."""
        if server is not None:
            self._server_observers = (*self._server_observers, server)
            self._server_observe = combine_observers(self._server_observers)
            self._server_hooked = True
        if client is not None:
            self._client_observers = (*self._client_observers, client)
            self._client_observe = combine_observers(self._client_observers)
            self._client_hooked = True

    # ------------------------------------------------------------ hooks

    def on_connect(self, hook: ClientHook) -> ClientHook:
        """``hook(client)`` for every connection, accepted or dialed."""
        self._connect_hooks.append(hook)
        return hook

    def on_first_request(self, hook: ClientHook) -> ClientHook:
        """``hook(client)`` on the first request of an accepted connection."""
        self._first_request_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: ClientHook) -> ClientHook:
        self._disconnect_hooks.append(hook)
        return hook

    async def _fire(self, hooks: list[ClientHook], client: Client) -> None:
        for hook in hooks:
            try:
                outcome = hook(client)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("%r: hook %r raised", self, hook)

    async def _client_connected(self, client: Client) -> None:
        self._clients.add(client)
        if len(self._clients) > self._clients_peak:
            self._clients_peak = len(self._clients)
        await self._fire(self._connect_hooks, client)
        self.plugins.notify("kite_connected", kite=self, client=client)

    def _connections(self) -> list[Connection]:
        """The open connections of this kite's clients, accepted and dialed."""
        return [client.connection for client in self._clients if client.connection is not None]

    def _after_crowd(self) -> None:
        """The server gives memory back after a crowd of connections has gone: what was made
        amid the crowd and would outlive it goes now (the identities of callers that came
        meanwhile) or is made anew (the client set, which keeps the table of its peak)."""
        forget_recent_identities()
        self._clients = set(self._clients)
        self._clients_peak = len(self._clients)

    async def _client_disconnected(self, client: Client) -> None:
        clients = self._clients
        clients.discard(client)
        if self._clients_peak >= _SHRINK_PEAK and len(clients) * 8 <= self._clients_peak:
            # a set keeps the table of its peak: after a crowd has gone, a fresh copy is a
            # fraction of it (10,000 connections leave a table of 512 KiB behind)
            self._clients = set(clients)
            self._clients_peak = len(clients)
        await self._fire(self._disconnect_hooks, client)
        self.plugins.notify("kite_disconnected", kite=self, client=client)

    # ------------------------------------------------------------ clients

    def new_client(
        self, url: str, *, auth: Any = None, transport: str | None = None, reconnect: bool = False
    ) -> Client:
        """A client for the kite at ``url``; ``async with`` it to dial and close.

        ``reconnect=True`` makes the context manager use :meth:`Client.dial_forever`.
        """
        client = Client(self, url, auth=auth, transport=transport)
        client._reconnect = reconnect
        return client

    @property
    def client_ssl_context(self) -> ssl.SSLContext:
        """The context this kite dials ``https://``/``wss://`` URLs with
        (:func:`kitecore.tls.client_context`), made once and again when the TLS fields of
        :attr:`config` change."""
        c = self.config
        key = (
            c.tls_ca_file,
            c.tls_client_cert_file,
            c.tls_client_key_file,
            c.tls_insecure,
        )
        cached = self._client_ssl
        if cached is None or cached[0] != key:
            cached = (key, client_context(c))
            self._client_ssl = cached
        return cached[1]

    def ssl_context_for(self, url: str) -> ssl.SSLContext | None:
        """What dialing ``url`` uses: :attr:`client_ssl_context` for ``https://``/``wss://``,
        None for a plain URL."""
        return self.client_ssl_context if is_secure_url(url) else None

    def transport_for(self, url: str, name: str | None = None) -> Transport:
        """The transport that dials ``url`` first: by name, or the best that accepts the URL."""
        return self.transports_for(url, name)[0]

    def transports_for(self, url: str, name: str | None = None) -> list[Transport]:
        """The transports to try for ``url``, in order: the one named (``name``, else
        ``config.transport``), or with ``auto`` every transport that accepts the URL, the one
        that worked there last time first (:func:`kitecore.transports.choice.candidates`)."""
        wanted = name or self.config.transport or AUTO
        return candidates(self.plugins.transports, url, wanted, self.dial_memory)

    # ------------------------------------------------------------ kontrol

    _kontrol_client: KontrolClient | None = None

    @property
    def kontrol_client(self) -> KontrolClient:
        """This kite's :class:`~kitecore.discovery.KontrolClient` (made on first use)."""
        if self._kontrol_client is None:
            from kitecore.discovery import KontrolClient

            self._kontrol_client = KontrolClient(self)
        return self._kontrol_client

    async def register(self, url: str | None = None) -> RegisterResult:
        """Register with Kontrol once at ``url`` (default: the URL this kite serves on)."""
        return await self.kontrol_client.register(url)

    async def register_forever(self, url: str | None = None) -> None:
        """Stay registered with Kontrol, re-registering after every reconnect (returns at
        once; ``await kite.kontrol_client.registered.wait()`` for the first success)."""
        await self.kontrol_client.register_forever(url)

    async def get_kites(self, query: Any = None, /, **fields: str) -> list[Client]:
        """Undialed clients of the kites matching ``query`` (a Query, a dict or keywords)."""
        return await self.kontrol_client.get_kites(query, **fields)

    def watch_kites(self, query: Any = None, /, **options: Any) -> KiteWatch:
        """Arrivals and departures of the kites matching ``query`` (a Query, a dict or
        keywords), initial kites first: ``async with kite.watch_kites(name="math") as watch:
        async for event in watch: ...`` (:mod:`kitecore.discovery.watch`)."""
        return self.kontrol_client.watch_kites(query, **options)

    def pool(self, query: Any = None, /, *, picker: Any = "round_robin", **options: Any) -> Pool:
        """A :class:`~kitecore.pool.Pool` that calls any kite matching ``query`` (a Query, a
        dict or a ``username/environment/name[/version]`` path), chosen by ``picker`` (a
        registered picker name or a picker object); ``options`` go to the pool."""
        from kitecore.pool import Pool

        return Pool(self, query, picker=picker, **options)

    async def get_token(self, kite: Any, *, force: bool = False) -> str:
        """A Kontrol token to call the kite ``kite`` (an identity or a query) names."""
        return await self.kontrol_client.get_token(kite, force=force)

    async def get_key(self) -> str:
        """Kontrol's current public key; it also becomes ``config.kontrol_key``."""
        return await self.kontrol_client.get_key()

    # ------------------------------------------------------------ serving calls

    def _needs_auth(self, method: Method) -> bool:
        if method.auth is not None:
            return method.auth
        return not self.config.disable_authentication

    async def _authenticate(self, request: Request, connection: Connection) -> None:
        if connection.dialed:
            return  # we dialed this peer: its calls to us are trusted (protocol.md §2.4)
        auth = request.auth
        if auth is None:
            raise AuthenticationError("No authentication information is provided")
        authenticator = self.authenticators.get(auth.type)
        if authenticator is None:
            raise AuthenticationError(f"Unknown authentication type: {auth.type}")
        try:
            username = await authenticator.authenticate(request)
        except AuthenticationError as exc:
            raise AuthenticationError(f"{auth.type}: {exc.message}") from None
        request.username = username
        request.client.username = username

    async def _serve_call(
        self, client: Client, connection: Connection, name: str, arguments: list[Any]
    ) -> None:
        try:
            options = parse_call_options(arguments)
        except CallOptionsError as exc:  # it found the response callback if there was one
            logger.info("%r: bad call of %s: %s", connection, name, exc)
            _reply(connection, exc.response_callback, None, exc)
            return
        respond = options.response_callback
        if self.shutting_down:  # the one per-call check graceful shutdown costs
            _reply(connection, respond, None, ShuttingDownError())
            return
        if options.kite is not None and client.remote_kite is None and not connection.dialed:
            client.remote_kite = options.kite
            client.username = options.kite.username
            await self._fire(self._first_request_hooks, client)
        method = self._methods.get(name)
        if method is None:
            _reply(connection, respond, None, MethodNotFoundError(f"Method not found: {name}"))
            return
        request = Request.served(
            name, options.with_args, options.kite, options.authentication, client, self
        )
        # log lines about this call carry its request id, method and peer (logcontext)
        context_token = current_request.set(request)
        try:
            if self._server_hooked:  # observers and/or interceptors
                call = ServerCall(self, request, connection.peer, arguments[0])
                chain = self._server_chain  # (the interceptors, inline: no frame of theirs)
                observe = self._server_observe
                if observe is None:  # then there are interceptors
                    assert chain is not None
                    # (a partial, not a lambda: no closure cells in this function, whose
                    # plain path would pay for them too, and no frame of its own)
                    proceed = functools.partial(self._run_method, method, request, connection)
                    result = await chain(call, proceed)
                else:
                    start, end = observe
                    state = start(call)
                    try:
                        if chain is None:
                            result = await self._run_method(method, request, connection)
                        else:
                            proceed = functools.partial(
                                self._run_method, method, request, connection
                            )
                            result = await chain(call, proceed)
                    except BaseException as exc:
                        end(call, state, exc)
                        raise
                    end(call, state, None)
            else:  # _run_method inline: no interceptor costs no extra frame
                needs_auth = method.auth  # (self._needs_auth, inlined: it runs for every call)
                if needs_auth is None:
                    needs_auth = not self.config.disable_authentication
                if needs_auth:
                    await self._authenticate(request, connection)
                if method.bucket is not None:
                    method.check_throttle()
                handler = method.handler
                if handler.is_async and method.is_simple and self.middleware.empty:
                    result = await handler.function(request)  # the chain of one, inline
                else:
                    result = await run_chain(method, self.middleware, request, self.method_handling)
        except KiteError as exc:
            if not exc.id:
                exc.id = request.id
            _reply(connection, respond, None, exc)
        except Exception as exc:
            logger.exception("%r: handler of %s raised (request %s)", self, name, request.id)
            message = str(exc) or type(exc).__name__
            _reply(connection, respond, None, GenericError(message, id=request.id))
        else:
            if type(respond) is RemoteCallback and not connection.closed:
                # the common reply, sent here (what _reply does first, without its frame)
                try:
                    connection.send_reply(respond.id, result)
                except KiteError as exc:
                    _unsent_reply(connection, respond, None, exc)
            else:
                _reply(connection, respond, result, None)
        finally:
            current_request.reset(context_token)

    def _run_method(
        self, method: Method, request: Request, connection: Connection
    ) -> Awaitable[Any]:
        """Authenticate, throttle and run the handlers of one call (what interceptors wrap).

        A plain function: with no authentication to wait for, it hands back the handler
        chain's coroutine itself, one frame less under the interceptors."""
        needs_auth = method.auth  # (self._needs_auth and check_throttle, inlined: per call)
        if needs_auth is None:
            needs_auth = not self.config.disable_authentication
        if needs_auth and not connection.dialed:
            return self._authenticate_and_run(method, request, connection)
        if method.bucket is not None:
            method.check_throttle()
        handler = method.handler
        if handler.is_async and method.is_simple and self.middleware.empty:
            # the chain of one, as the plain path runs it (an async function's coroutine)
            coroutine: Awaitable[Any] = handler.function(request)
            return coroutine
        return run_chain(method, self.middleware, request, self.method_handling)

    async def _authenticate_and_run(
        self, method: Method, request: Request, connection: Connection
    ) -> Any:
        await self._authenticate(request, connection)
        method.check_throttle()
        return await run_chain(method, self.middleware, request, self.method_handling)

    async def serve_stream(self, stream: Any, peer: PeerInfo) -> None:
        """Serve ``stream`` (an ``ObjectStream[str]`` of messages) exactly like an accepted
        connection, authentication included, until it ends; for streams a plugin opened
        itself (a tunnel the kite dialed out to a proxy). Needs no listening server."""
        await self._accept(stream, peer)

    async def _accept(self, stream: Any, peer: PeerInfo) -> None:
        """Serve one accepted stream (the transports' accept handler)."""
        client = Client(self)
        connection = Connection(
            stream,
            functools.partial(self._serve_call, client),  # no extra frame per call
            peer=peer,
            dialed=False,
            max_message_size=self.config.max_message_size,
            max_callbacks=self.config.max_callbacks,
            max_pending_calls=self.config.max_pending_calls,
        )
        try:
            await client._serve(connection)
        finally:
            # client and connection refer to each other: unlinked, both are freed the moment
            # the connection ends instead of at the next full garbage collection (which, for
            # long-lived connections, may be a long time away)
            client.connection = None

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Kite:
        from kitecore.http.server import HTTPServer

        self._begin_lifecycle()
        group = await self._tasks.open()
        try:
            config = self.config
            ssl_context = server_context(config)
            server = HTTPServer(
                handshake_timeout=config.handshake_timeout,
                max_message_size=config.max_message_size,
                max_header_size=config.max_header_size,
                max_connections=config.max_connections,
                max_connections_per_ip=config.max_connections_per_ip,
                websocket_idle_timeout=config.idle_timeout or None,
                max_outbound_bytes=config.max_outbound_bytes or None,
            )
            self._mount_routes(server, "/kite")  # health checks on /kite/health
            server.on_release(self._after_crowd)
            self._server = server
            host = self.config.ip or "0.0.0.0"
            try:
                self.port = await group.start(
                    partial(server.serve, ssl_context=ssl_context), host, self.config.port
                )
            except OSError as exc:
                raise ListenError(host, self.config.port, exc) from exc
            shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
            if ":" in shown:
                shown = f"[{shown}]"
            scheme = "http" if ssl_context is None else "https"
            self.url = f"{scheme}://{shown}:{self.port}/kite"
            logger.info("%s serving on %s", self.identity.path, self.url)
            self._announce_started(group)
        except BaseException:
            await self._tasks.aclose()
            raise
        return self

    def _mount_routes(self, server: HTTPServer, prefix: str) -> None:
        """Every route this kite serves, on ``server`` (the built-in server, or an ASGI app's
        route table, which has the same ``add_route``/``add_websocket_route``): each
        transport's routes under ``prefix``, ``prefix + "/health"``, and the routes added with
        :meth:`handle_http` and :meth:`handle_websocket`."""
        for transport in self.plugins.transports.values():
            transport.mount(server, prefix, self._accept)
        server.add_route(prefix + "/health", self._health, methods=("GET", "HEAD"))
        for path, handler, methods in self._http_routes:
            server.add_route(path, handler, methods=methods)
        for path, handler in self._websocket_routes:
            server.add_websocket_route(path, handler)

    def _begin_lifecycle(self) -> None:
        """The state of a fresh start (``async with kite`` or an ASGI app's lifespan)."""
        self.ready = anyio.Event()
        self.shutting_down = False
        self._shutdown_done = None
        self._started_at = time.monotonic()

    def _announce_started(self, group: TaskGroup) -> None:
        """The kite serves at ``self.url``: its idle sweeper starts in ``group``, plugins hear
        ``kite_started`` and :attr:`ready` is set (whichever server accepts its connections)."""
        if self.config.idle_timeout:
            group.start_soon(
                close_idle_connections,
                self._connections,
                self.config.idle_timeout,
                lambda connection: group.start_soon(close_idle, connection),
            )
        self.plugins.notify("kite_started", kite=self, url=self.url)
        ready = self.ready
        assert ready is not None  # made by _begin_lifecycle
        ready.set()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.shutdown()
        await self._tasks.aclose()
        self.plugins.notify("kite_stopped", kite=self)

    async def aclose(self) -> None:
        """Close every connection this kite has open. Idempotent."""
        with anyio.CancelScope(shield=True):
            for client in list(self._clients):
                await client.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`, kept for existing callers."""
        await self.aclose()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Leave gracefully: stop accepting connections, close the connection to Kontrol
        (which deregisters this kite), refuse new calls (:class:`ShuttingDownError`, on the
        wire a ``genericError`` "kite is shutting down" with code ``shuttingDown``), let the
        calls in flight finish for up to ``timeout`` seconds (default
        ``config.shutdown_timeout``), then close every connection with a close frame.

        Idempotent (a second caller waits for the first); runs even when cancelled.
        ``async with kite:`` calls it when the block ends.
        """
        if self._shutdown_done is not None:
            with anyio.CancelScope(shield=True):
                await self._shutdown_done.wait()
            return
        done = self._shutdown_done = anyio.Event()
        self.shutting_down = True
        limit = self.config.shutdown_timeout if timeout is None else timeout
        with anyio.CancelScope(shield=True):
            try:
                if self._server is not None:
                    self._server.stop_accepting()
                if self._kontrol_client is not None:
                    await self._kontrol_client.aclose()
                with anyio.move_on_after(limit) as waited:
                    await self._drain()
                if waited.cancelled_caught:
                    logger.warning(
                        "%s: calls still running after %gs; closing", self.identity.path, limit
                    )
                await self.aclose()
            finally:
                done.set()

    async def _drain(self) -> None:
        """Return when no accepted connection has a call queued or running, and their
        replies are written out."""
        delay = 0.005
        while True:
            connections = [
                c.connection
                for c in self._clients
                if c.connection is not None and not c.connection.dialed
            ]
            if not any(c.busy or c.backlog for c in connections if not c.closed):
                return
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _health(self, request: Any, response: Any) -> None:
        """``GET /kite/health``: 200 and this kite's state as JSON, 503 while shutting down."""
        kontrol = self._kontrol_client
        body = {
            "status": "shutting down" if self.shutting_down else "ok",
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "uptime": round(time.monotonic() - self._started_at, 3),
            "connections": len(self._clients),
            "registered": kontrol is not None and kontrol.is_registered,
        }
        data = json.dumps(body).encode()
        status = 503 if self.shutting_down else 200
        headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        await response.send(status, headers, data)

    async def serve(self) -> None:
        """Serve until cancelled."""
        async with self:
            await anyio.sleep_forever()

    async def serve_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then :meth:`shutdown`; a second signal during the
        shutdown ends the process at once (status 128 + the signal's number)."""
        async with self:
            await wait_for_signal_then(self.shutdown)

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C); the blocking entry point for scripts.

        When the kite cannot listen on its address (say the port is taken), this exits the
        program with status 1 and that one line on stderr, as Go's ``Run`` does.
        """
        backend = os.environ.get("KITE_ANYIO_BACKEND", "asyncio")
        options: dict[str, Any] = {}
        if backend == "asyncio" and os.environ.get("KITE_UVLOOP", "") not in ("", "0"):
            options["use_uvloop"] = True
        try:
            anyio.run(self.serve_until_signal, backend=backend, backend_options=options)
        except ListenError as exc:
            raise SystemExit(f"kite {self.name}: {exc}") from None
        except KeyboardInterrupt:
            logger.info("%s interrupted", self.identity.path)


#: The fewest clients at a peak for the client set to be rebuilt once an eighth remain.
_SHRINK_PEAK = 64


async def wait_for_signal_then(shutdown: Callable[[], Any]) -> None:
    """Wait for SIGTERM or SIGINT, then await ``shutdown()``; a second signal meanwhile
    exits the process at once with status 128 + its number (a forced exit)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logger.info("%s: shutting down (again to force)", signal.Signals(signum).name)
            break

        async def force() -> None:
            async for again in signals:
                logger.warning("%s again: exiting now", signal.Signals(again).name)
                logging.shutdown()
                os._exit(128 + again)

        async with anyio.create_task_group() as tg:
            tg.start_soon(force)
            await shutdown()
            tg.cancel_scope.cancel()


def _reply(connection: Connection, respond: Any, result: Any, error: KiteError | None) -> None:
    """Invoke the caller's response callback, if it sent one and is still there."""
    if respond is None:
        return
    if connection.closed:
        logger.debug("%r: reply dropped, the caller has gone", connection)
        return
    try:
        if error is None and type(respond) is RemoteCallback:
            connection.send_reply(respond.id, result)  # encoded without building it first
        else:
            respond(*response_arguments(result, error))
    except KiteError as exc:
        _unsent_reply(connection, respond, error, exc)


def _unsent_reply(
    connection: Connection, respond: Any, error: KiteError | None, exc: KiteError
) -> None:
    """Sending a reply failed with ``exc``: log it, and when it was a result that could not
    be sent (not JSON, too many callbacks), tell the caller so instead."""
    logger.warning("%r: could not send the reply: %s", connection, exc)
    if error is None and not connection.closed:  # e.g. a result that is not JSON
        if not isinstance(exc, CallbackLimitError):
            exc = GenericError(f"cannot encode result: {exc}")
        respond(*response_arguments(None, exc))
