"""The ``loopback`` transport: kites in one process, connected by memory streams.

A kite that serves also listens on ``loopback://HOST:PORT/kite`` (same host, port and
path as its HTTP URL), so tests can swap ``http://`` for ``loopback://`` and exercise
everything above the transport without sockets.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
from anyio.streams.stapled import StapledObjectStream

from kitecore.hookspecs import hookimpl
from kitecore.transport import AcceptHandler, DialOptions, MessageStream, PeerInfo, Transport

if TYPE_CHECKING:
    from kitecore.http.server import HTTPServer

logger = logging.getLogger(__name__)


class LoopbackTransport:
    """In-process transport; see the module docstring."""

    name = "loopback"
    priority = 100

    def __init__(self) -> None:
        # weak keys: a server that is gone takes its listeners with it
        self._listeners: weakref.WeakKeyDictionary[HTTPServer, list[tuple[str, AcceptHandler]]]
        self._listeners = weakref.WeakKeyDictionary()

    def accepts(self, url: str) -> bool:
        return url.startswith("loopback://")

    def mount(self, server: HTTPServer, prefix: str, on_accept: AcceptHandler) -> None:
        self._listeners.setdefault(server, []).append((prefix, on_accept))

    def _find(self, url: str) -> tuple[HTTPServer, AcceptHandler]:
        parts = urlsplit(url)
        path = parts.path.rstrip("/") or "/"
        for server, mounts in list(self._listeners.items()):
            if server.serving and server.port == parts.port:
                for prefix, on_accept in mounts:
                    if path == prefix:
                        return server, on_accept
        raise ConnectionRefusedError(f"no kite listens on {url}")

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        server, on_accept = self._find(url)
        to_server_send, to_server_receive = anyio.create_memory_object_stream[str](math.inf)
        to_client_send, to_client_receive = anyio.create_memory_object_stream[str](math.inf)
        client_side = StapledObjectStream(to_server_send, to_client_receive)
        server_side = StapledObjectStream(to_client_send, to_server_receive)
        # the serving kite's server runs the accepted side, as it would for a socket
        server.start_soon(on_accept, server_side, PeerInfo("loopback", "loopback"))
        return client_side


_transport = LoopbackTransport()


@hookimpl
def kite_register_transports(register: Callable[[Transport], None]) -> None:
    """Register the process-wide loopback transport."""
    register(_transport)
