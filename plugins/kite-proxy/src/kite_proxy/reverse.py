"""The reverse proxy: a public kite (``proxy`` 0.0.1) forwarding to kites on private addresses.

Wire (Go's ``reverseproxy``): ``register`` with ``withArgs[0]`` the caller's own URL maps the
caller's kite id to it and answers ``<scheme>://<public host>/proxy/<kiteID>``; requests to
``/proxy/<kiteID>/<rest>`` go to ``<registered URL>/<rest>``, WebSocket upgrades message by
message, every other request as HTTP (streamed both ways). The proxy checks no call: the kite
behind it authenticates its callers end to end. A mapping goes when the kite's connection ends.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import anyio

from kitecore import ArgumentError, Client, Config, Kite, Request
from kitecore.http import (
    HandshakeError,
    HTTPClient,
    HTTPProtocolError,
    HTTPRequest,
    HTTPResponse,
    WebSocketConnection,
    connect_websocket,
)
from kitecore.plugins import PluginRegistry

from .forwarding import (
    forwarded_request_headers,
    forwarded_response_headers,
    forwarded_websocket_headers,
    join_target,
    websocket_url,
)
from .mappings import MappingTable, caller_kite_id
from .netloc import proxy_netloc, proxy_scheme
from .pipe import pipe

__all__ = ["ReverseProxy"]

logger = logging.getLogger(__name__)

_HTTP_ROUTE = re.compile(r"/proxy/([^/]+)(/.*)?")
_WEBSOCKET_ROUTE = re.compile(r"/proxy/([^/]+)/.+")
_URL_SCHEMES = ("http", "https", "ws", "wss")


class ReverseProxy:
    """Go's reverse proxy as a kite; ``async with proxy:`` serves it (``proxy.kite`` is the kite).

    ``public_host``/``public_port`` are where callers reach it (default: where it listens);
    ``scheme`` is ``http`` or ``https`` (default: ``https`` when the kite serves TLS, its
    config's ``tls_cert_file``; give ``https`` when a TLS terminator in front of it does).
    Kites behind it are dialed with the kite's own client TLS settings
    (``KITE_TLS_CA_FILE``..., :attr:`kitecore.Kite.client_ssl_context`). ``poll_timeout``
    bounds the wait for a forwarded answer's head (SockJS long polls answer within their
    heartbeat).
    """

    NAME = "proxy"
    VERSION = "0.0.1"

    def __init__(
        self,
        config: Config | None = None,
        *,
        public_host: str = "",
        public_port: int = 0,
        scheme: str | None = None,
        plugins: PluginRegistry | None = None,
        poll_timeout: float = 60.0,
    ) -> None:
        self.kite = Kite(self.NAME, self.VERSION, config=config, plugins=plugins)
        self.public_host = public_host
        self.public_port = public_port
        self.scheme = proxy_scheme(self.kite, scheme)
        self.poll_timeout = poll_timeout
        self.mappings = MappingTable()
        self.kite.handle("register", self._register)
        self.kite.on_disconnect(self._left)
        self.kite.handle_http(_HTTP_ROUTE, self._forward_http)
        self.kite.handle_websocket(_WEBSOCKET_ROUTE, self._forward_websocket)

    # -- addresses ----------------------------------------------------------------------------

    @property
    def netloc(self) -> str:
        """``host:port`` callers use."""
        return proxy_netloc(self.kite, self.public_host, self.public_port, self.scheme)

    @property
    def url(self) -> str:
        """The proxy's own kite URL (what it registers with Kontrol)."""
        return f"{self.scheme}://{self.netloc}/kite"

    def proxy_url(self, kite_id: str) -> str:
        """Where callers reach kite ``kite_id`` through this proxy."""
        return f"{self.scheme}://{self.netloc}/proxy/{kite_id}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> ReverseProxy:
        await self.kite.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.kite.__aexit__(*exc_info)

    async def serve(self, *, register: bool = True) -> None:
        """Serve until cancelled, registered with Kontrol (when ``register`` and a Kontrol URL
        is configured) under :attr:`url`."""
        async with self:
            if register and self.kite.config.kontrol_url:
                await self.kite.register_forever(self.url)
            await anyio.sleep_forever()

    # -- the register method ------------------------------------------------------------------

    async def _register(self, request: Request) -> str:
        url = request.args.string(0)
        parts = urlsplit(url)
        if parts.scheme.lower() not in _URL_SCHEMES or not parts.hostname:
            raise ArgumentError(f"register needs the kite's own http(s) URL, not {url!r}")
        kite_id = caller_kite_id(request)
        self.mappings.add(kite_id, request.client, url)
        logger.info("kite %s registered at %s", kite_id, url)
        return self.proxy_url(kite_id)

    def _left(self, client: Client) -> None:
        self.mappings.forget(client)

    # -- forwarding ---------------------------------------------------------------------------

    def _target(self, request: HTTPRequest) -> tuple[str, str] | None:
        """(kite id, target URL) of a ``/proxy/<id>/<rest>`` request, None if not registered."""
        raw_path, _, query = request.target.partition("?")
        tail = raw_path.removeprefix("/proxy/").partition("/")[2]
        assert request.match is not None
        kite_id = request.match.group(1)
        mapping = self.mappings.get(kite_id)
        if mapping is None:
            return None
        return kite_id, join_target(mapping.target, "/" + tail if tail else "", query)

    async def _forward_http(self, request: HTTPRequest, response: HTTPResponse) -> None:
        found = self._target(request)
        if found is None:
            await response.send(404, [("content-type", "text/plain")], b"no such kite here\n")
            return
        _, url = found
        headers = forwarded_request_headers(request, self.scheme)
        # no cookie jar is shared; an https:// kite is verified as the kite verifies its peers
        async with HTTPClient(
            timeout=self.poll_timeout, ssl_context=self.kite.ssl_context_for(url)
        ) as http:
            try:
                async with http.stream(
                    request.method, url, headers=headers, body=request.body
                ) as answer:
                    await response.start(answer.status, forwarded_response_headers(answer.headers))
                    async for chunk in answer:
                        await response.write(chunk)
                    await response.end()
            except (OSError, TimeoutError, HTTPProtocolError) as exc:
                if response.started:
                    raise
                logger.info("forwarding %s %s failed: %r", request.method, url, exc)
                await response.send(502, [("content-type", "text/plain")], b"kite unreachable\n")

    async def _forward_websocket(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        found = self._target(request)
        if found is None:
            await ws.aclose(4404, "no such kite here")
            return
        _, url = found
        try:
            upstream = await connect_websocket(
                websocket_url(url),
                headers=forwarded_websocket_headers(request, self.scheme),
                max_message_size=self.kite.config.max_message_size,
                ssl_context=self.kite.ssl_context_for(url),
            )
        except (OSError, TimeoutError, HandshakeError) as exc:
            logger.info("forwarding a websocket to %s failed: %r", url, exc)
            await ws.aclose(1014, "kite unreachable")
            return
        await pipe(ws, upstream)
