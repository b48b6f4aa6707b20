"""The ``sockjs`` transport plugin (entry point ``kite_transport_sockjs.plugin``).

It registers:

* ``sockjs``: serves SockJS under the kite's ``/kite`` prefix and dials ``http(s)://`` kite URLs
  with websocket, falling back to xhr-polling. Its priority (20) beats the raw ``websocket``
  transport (10) for ``http(s)://.../kite`` URLs, which is what Go kites and kite.js serve;
  ``ws(s)://`` URLs stay with raw websocket. A kite without SockJS at the URL makes the dial
  raise :class:`~kitecore.transport.TransportMismatchError`, and the kite falls back to raw
  websocket (and remembers that for the URL: :mod:`kitecore.transports.choice`).
* ``WebSocket``, ``XHRPolling`` and ``XHRStreaming``: the SockJS client fixed to one
  sub-transport, for ``KITE_TRANSPORT`` (the first two are Go's ``Config.Transport`` values).
  They dial only when named and serve nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from urllib.parse import urlsplit

from kitecore.hookspecs import hookimpl
from kitecore.http.server import HTTPServer
from kitecore.transport import AcceptHandler, DialOptions, MessageStream, Transport

from .client import dial
from .config import SockJSConfig
from .server import SockJSService

__all__ = ["SockJSTransport", "kite_register_transports"]

logger = logging.getLogger(__name__)


class SockJSTransport:
    """SockJS as a kite transport; see the module docstring.

    ``mode`` is the client's sub-transport (``auto``, ``websocket``, ``xhr-polling``,
    ``xhr-streaming``); ``serve`` says whether :meth:`mount` adds the server routes, configured
    by ``config``. :attr:`services` holds the mounted :class:`SockJSService` objects that are
    still alive (weakly).
    """

    def __init__(
        self,
        name: str = "sockjs",
        *,
        mode: str = "auto",
        priority: int = 20,
        serve: bool = True,
        config: SockJSConfig | None = None,
        poll_timeout: float = 45.0,
    ) -> None:
        self.name = name
        self.mode = mode
        self.priority = priority
        self.serve = serve
        self.config = config or SockJSConfig()
        self.poll_timeout = poll_timeout
        self.services: weakref.WeakSet[SockJSService] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<SockJSTransport {self.name!r} mode={self.mode}>"

    def accepts(self, url: str) -> bool:
        """True for ``http`` and ``https`` URLs."""
        return urlsplit(url).scheme.lower() in ("http", "https")

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        """Open a SockJS session to the kite at ``url`` (``TransportMismatchError`` if the
        server there serves no SockJS)."""
        return await dial(
            url,
            self.mode,
            headers=options.headers,
            handshake_timeout=options.handshake_timeout,
            max_message_size=options.max_message_size,
            ssl_context=options.ssl_context,
            poll_timeout=self.poll_timeout,
        )

    def mount(self, server: HTTPServer, prefix: str, on_accept: AcceptHandler) -> None:
        """Serve SockJS under ``prefix`` (``/kite``), unless this is a client-only alias."""
        if not self.serve:
            return
        service = SockJSService(self.config, on_accept)
        service.mount(server, prefix)
        self.services.add(service)
        logger.debug("SockJS served under %s", prefix)


def client_aliases() -> list[SockJSTransport]:
    """The client-only transports named after one sub-transport each."""
    return [
        SockJSTransport("WebSocket", mode="websocket", priority=0, serve=False),
        SockJSTransport("XHRPolling", mode="xhr-polling", priority=0, serve=False),
        SockJSTransport("XHRStreaming", mode="xhr-streaming", priority=0, serve=False),
    ]


@hookimpl
def kite_register_transports(register: Callable[[Transport], None]) -> None:
    """Register ``sockjs`` and its single-sub-transport aliases."""
    register(SockJSTransport())
    for alias in client_aliases():
        register(alias)
