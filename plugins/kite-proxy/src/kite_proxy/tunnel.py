"""The tunnel proxy: a public kite (``tunnelproxy`` 0.0.2) for kites with no reachable address.

Wire (Go's ``tunnelproxy``): a kite dials the proxy and calls ``register`` (arguments
ignored); the answer ``http(s)://<public host>/proxy?kiteID=<id>`` is what it registers with
Kontrol. A caller opens a SockJS session on ``/proxy/<server>/<session>/...?kiteID=<id>``; the
proxy calls ``kite.tunnel`` on the kite's connection with ``{"url":
"ws(s)://<public host>/tunnel/<server>/<session>/websocket?token=<jwt>"}``, the kite dials that
URL (a SockJS websocket) and the proxy copies messages between the two sessions.

Unlike Go's: a caller may use any SockJS transport (xhr-polling included), messages are copied
whole up to the configured maximum, and a tunnel token is good for one tunnel only (a replay,
a sequence number never issued, a token of another key or an expired one is refused).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import secrets
from typing import Any

import anyio
from anyio.abc import ObjectStream
from kite_transport_sockjs.config import SockJSConfig
from kite_transport_sockjs.server import SockJSService

from kitecore import Client, Config, GenericError, Kite, KiteError, Request
from kitecore.http import Headers, HTTPRequest, HTTPResponse, WebSocketConnection
from kitecore.plugins import PluginRegistry
from kitecore.transport import PeerInfo

from .mappings import MappingTable, caller_kite_id
from .netloc import proxy_netloc, proxy_scheme
from .pipe import pipe
from .tokens import TunnelTokenError, TunnelTokens

__all__ = ["TunnelProxy"]

logger = logging.getLogger(__name__)

#: Set by the proxy on requests it hands to its SockJS service (a caller's own is dropped).
KITE_ID_HEADER = "x-kite-tunnelproxy-kite-id"
_PROXY_HTTP = re.compile(r"/proxy(/.*)?")
_PROXY_WEBSOCKET = re.compile(r"/proxy/[^/.]+/[^/.]+/websocket")
_TUNNEL_WEBSOCKET = re.compile(r"/tunnel/[^/.]+/[^/.]+/websocket")


class _Pending:
    """A tunnel asked for and not yet dialed back: the kite's stream once it arrives."""

    def __init__(self, kite_id: str) -> None:
        self.kite_id = kite_id
        self.arrived = anyio.Event()
        self.done = anyio.Event()
        self.stream: ObjectStream[str] | None = None


class TunnelProxy:
    """Go's tunnel proxy as a kite; ``async with proxy:`` serves it (``proxy.kite`` is the kite).

    ``public_host``/``public_port`` are where callers and kites reach it (default: where it
    listens); ``scheme`` is ``http`` or ``https`` (default: ``https`` when the kite serves TLS,
    its config's ``tls_cert_file``; give ``https`` when a TLS terminator in front of it does),
    and the kites' tunnel URLs are ``wss://`` with ``https``. ``private_key`` (PEM) signs
    tunnel tokens (default: a fresh key per process). ``tunnel_call_timeout`` bounds the
    ``kite.tunnel`` call, ``tunnel_timeout`` the wait for the kite to dial back.
    """

    NAME = "tunnelproxy"
    VERSION = "0.0.2"

    def __init__(
        self,
        config: Config | None = None,
        *,
        public_host: str = "",
        public_port: int = 0,
        scheme: str | None = None,
        private_key: str | bytes | None = None,
        plugins: PluginRegistry | None = None,
        sockjs: SockJSConfig | None = None,
        tunnel_call_timeout: float = 4.0,
        tunnel_timeout: float = 60.0,
    ) -> None:
        self.kite = Kite(self.NAME, self.VERSION, config=config, plugins=plugins)
        self.public_host = public_host
        self.public_port = public_port
        self.scheme = proxy_scheme(self.kite, scheme)
        self.tokens = TunnelTokens(private_key)
        self.sockjs = sockjs or SockJSConfig()
        self.tunnel_call_timeout = tunnel_call_timeout
        self.tunnel_timeout = tunnel_timeout
        self.mappings = MappingTable()
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._seq = itertools.count(1)
        self._callers = SockJSService(self.sockjs, self._serve_caller)
        self.kite.handle("register", self._register)
        self.kite.on_disconnect(self._left)
        self.kite.handle_http(_PROXY_HTTP, self._caller_http)
        self.kite.handle_websocket(_PROXY_WEBSOCKET, self._caller_websocket)
        self.kite.handle_websocket(_TUNNEL_WEBSOCKET, self._tunnel_websocket)

    # -- addresses ----------------------------------------------------------------------------

    @property
    def netloc(self) -> str:
        """``host:port`` callers and kites use."""
        return proxy_netloc(self.kite, self.public_host, self.public_port, self.scheme)

    @property
    def _websocket_scheme(self) -> str:
        return "wss" if self.scheme == "https" else "ws"

    @property
    def url(self) -> str:
        """The proxy's own kite URL (what it registers with Kontrol, as Go's does)."""
        return f"{self._websocket_scheme}://{self.netloc}/kite"

    def proxy_url(self, kite_id: str) -> str:
        """Where callers reach kite ``kite_id``."""
        return f"{self.scheme}://{self.netloc}/proxy?kiteID={kite_id}"

    @property
    def tunnels(self) -> int:
        """Tunnels asked for and not yet dialed back."""
        return len(self._pending)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> TunnelProxy:
        await self.kite.__aenter__()
        server = self.kite.server
        assert server is not None
        # the service's own routes come after ours, which pass the kite id on (see _with_kite_id)
        self._callers.mount(server, "/proxy")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.kite.__aexit__(*exc_info)

    async def serve(self, *, register: bool = True) -> None:
        """Serve until cancelled, registered with Kontrol when ``register`` and configured."""
        async with self:
            if register and self.kite.config.kontrol_url:
                await self.kite.register_forever(self.url)
            await anyio.sleep_forever()

    # -- kites ----------------------------------------------------------------------------------

    async def _register(self, request: Request) -> str:
        kite_id = caller_kite_id(request)
        self.mappings.add(kite_id, request.client, None)
        logger.info("kite %s registered for tunnels", kite_id)
        return self.proxy_url(kite_id)

    def _left(self, client: Client) -> None:
        self.mappings.forget(client)

    # -- callers --------------------------------------------------------------------------------

    @staticmethod
    def _with_kite_id(request: HTTPRequest) -> tuple[HTTPRequest, str]:
        kite_id = (request.query.get("kiteID") or [""])[0]
        headers = [(n, v) for n, v in request.headers if n != KITE_ID_HEADER]
        headers.append((KITE_ID_HEADER, kite_id))
        return dataclasses.replace(request, headers=Headers(headers)), kite_id

    async def _caller_http(self, request: HTTPRequest, response: HTTPResponse) -> None:
        request, kite_id = self._with_kite_id(request)
        if (
            request.path.rstrip("/") not in ("/proxy", "/proxy/info")
            and kite_id not in self.mappings
        ):
            await response.send(404, [("content-type", "text/plain")], b"no such kite here\n")
            return
        await self._callers.handle_http(request, response)

    async def _caller_websocket(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        request, kite_id = self._with_kite_id(request)
        if kite_id not in self.mappings:
            await ws.aclose(4404, "no such kite here")
            return
        await self._callers.handle_websocket(ws, request)

    async def _serve_caller(self, stream: ObjectStream[str], peer: PeerInfo) -> None:
        """One caller's session: ask the kite for a tunnel, then copy messages both ways."""
        kite_id = dict(peer.headers).get(KITE_ID_HEADER, "")
        mapping = self.mappings.get(kite_id)
        if mapping is None:
            logger.info("a caller asked for kite %r, which is not registered here", kite_id)
            return
        seq = next(self._seq)
        pending = _Pending(kite_id)
        self._pending[(kite_id, seq)] = pending
        try:
            token = self.tokens.sign(kite_id, seq)
            url = (
                f"{self._websocket_scheme}://{self.netloc}/tunnel/{secrets.randbelow(900) + 100}/"
                f"{secrets.token_hex(10)}/websocket?token={token}"
            )
            try:
                await mapping.client.tell(
                    "kite.tunnel", {"url": url}, timeout=self.tunnel_call_timeout
                )
            except KiteError as exc:
                logger.info("kite %s refused a tunnel: %s", kite_id, exc)
                return
            with anyio.move_on_after(self.tunnel_timeout):
                await pending.arrived.wait()
            if pending.stream is None:
                logger.info("kite %s did not dial tunnel %d back", kite_id, seq)
                return
            await pipe(stream, pending.stream)
        finally:
            self._pending.pop((kite_id, seq), None)
            pending.done.set()

    # -- tunnels ----------------------------------------------------------------------------------

    def claim(self, token: str) -> _Pending:
        """The tunnel ``token`` was issued for, taken (a second use finds nothing).

        Raises :class:`~kite_proxy.tokens.TunnelTokenError` or :class:`GenericError`.
        """
        claims = self.tokens.verify(token)
        pending = self._pending.pop((claims.kite_id, claims.seq), None)
        if pending is None or pending.stream is not None:
            raise GenericError(f"no tunnel {claims.seq} waits for kite {claims.kite_id}")
        return pending

    async def _tunnel_websocket(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        token = (request.query.get("token") or [""])[0]
        try:
            pending = self.claim(token)
        except (TunnelTokenError, GenericError) as exc:
            logger.info("refused a tunnel from %s: %s", request.remote_address, exc)
            await ws.aclose(4403, "tunnel refused")
            return

        async def hand_over(stream: ObjectStream[str], peer: PeerInfo) -> None:
            pending.stream = stream
            pending.arrived.set()
            await pending.done.wait()

        await SockJSService(self.sockjs, hand_over).handle_websocket(ws, request)
