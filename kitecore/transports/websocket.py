"""The raw ``websocket`` transport: one dnode message per WebSocket text message.

Python kites speak it to each other (the fastest path) and kite.js dials it with a
``ws://host:port/kite`` URL. Go kites only speak SockJS, whose plugin outranks this transport
for ``http(s)://.../kite`` URLs when it is installed; a kite that serves no SockJS is then
reached by falling back to this transport (:mod:`kitecore.transports.choice`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from kitecore.hookspecs import hookimpl
from kitecore.http.client import connect_websocket
from kitecore.http.errors import HandshakeError
from kitecore.http.server import HTTPRequest, HTTPServer
from kitecore.http.websocket import WebSocketConnection
from kitecore.transport import (
    AcceptHandler,
    DialOptions,
    MessageStream,
    PeerInfo,
    Transport,
    TransportMismatchError,
)

__all__ = ["WebSocketTransport", "kite_register_transports"]

logger = logging.getLogger(__name__)

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


class WebSocketTransport:
    """Raw WebSocket: dials ``ws(s)://`` and ``http(s)://`` URLs, serves ``<prefix>`` and
    ``<prefix>/websocket`` upgrade routes."""

    name = "websocket"
    priority = 10
    #: connect_websocket bounds the handshake by options.handshake_timeout itself
    enforces_handshake_timeout = True

    def accepts(self, url: str) -> bool:
        """True for ``ws``, ``wss``, ``http`` and ``https`` URLs."""
        return urlsplit(url).scheme.lower() in _SCHEMES

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        """Dial ``url`` (``http`` becomes ``ws``, the path is kept as is).

        A server that answers the upgrade with anything but 101 (a kite serving only SockJS
        answers its greeting, a plain web server 404) raises
        :class:`~kitecore.transport.TransportMismatchError`.
        """
        parts = urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise ValueError(f"the websocket transport cannot dial {url!r}")
        ws_url = urlunsplit((scheme, *parts[1:]))
        try:
            return await connect_websocket(
                ws_url,
                headers=options.headers,
                handshake_timeout=options.handshake_timeout,
                max_message_size=options.max_message_size,
                ssl_context=options.ssl_context,
            )
        except HandshakeError as exc:
            if exc.status_code == 101:  # a broken upgrade answer, not another protocol
                raise
            raise TransportMismatchError(_mismatch_message(url, exc)) from exc

    def mount(self, server: HTTPServer, prefix: str, on_accept: AcceptHandler) -> None:
        """Accept upgrades on ``prefix`` (``/kite``) and ``prefix + "/websocket"``."""

        def handle(ws: WebSocketConnection, request: HTTPRequest) -> Awaitable[None]:
            # not a coroutine of its own: the server awaits the accept handler's directly
            # (a frame less kept for each connection's life)
            peer = PeerInfo("websocket", request.remote_address, request.headers.items())
            logger.debug("websocket connection from %s on %s", peer.remote_address, request.path)
            return on_accept(ws, peer)

        base = prefix.rstrip("/")
        server.add_websocket_route(base or "/", handle)
        server.add_websocket_route(base + "/websocket", handle)


def _mismatch_message(url: str, exc: HandshakeError) -> str:
    message = f"{url} answered {exc.status_code} to a WebSocket upgrade"
    if exc.body.lstrip().startswith(b"Welcome to SockJS"):
        message += (
            "; it serves SockJS only: dial its http(s):// URL with the SockJS transport "
            "(plugin kite-transport-sockjs)"
        )
    return message


@hookimpl
def kite_register_transports(register: Callable[[Transport], None]) -> None:
    """Register the raw websocket transport."""
    register(WebSocketTransport())
