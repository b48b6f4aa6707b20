"""HTTP and WebSocket forwarding for the reverse proxy (headers, target URLs, streaming)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from kitecore.http import Headers, HTTPRequest

__all__ = [
    "forwarded_request_headers",
    "forwarded_response_headers",
    "forwarded_websocket_headers",
    "join_target",
    "websocket_url",
]

#: Hop-by-hop headers (RFC 9110 §7.6.1) and those the client side sets itself.
_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    )
)


def join_target(base: str, rest: str, query: str) -> str:
    """``base`` (a kite's registered URL) with ``rest`` appended to its path and ``query``."""
    parts = urlsplit(base)
    return urlunsplit(
        parts._replace(path=parts.path.rstrip("/") + rest, query=query or parts.query)
    )


def websocket_url(url: str) -> str:
    """``url`` with ``http(s)`` replaced by ``ws(s)``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    return urlunsplit(parts._replace(scheme=scheme))


def _client_ip(request: HTTPRequest) -> str:
    host = request.remote_address.rpartition(":")[0] or request.remote_address
    return host.strip("[]")


def _forwarding(request: HTTPRequest, scheme: str) -> list[tuple[str, str]]:
    previous = request.headers.get("x-forwarded-for")
    ip = _client_ip(request)
    chain = f"{previous}, {ip}" if previous else ip
    return [("X-Forwarded-For", chain), ("X-Forwarded-Proto", scheme)]


def forwarded_request_headers(request: HTTPRequest, scheme: str) -> list[tuple[str, str]]:
    """The request's end-to-end headers plus ``X-Forwarded-For`` / ``X-Forwarded-Proto``."""
    kept = [
        (name, value)
        for name, value in request.headers
        if name not in _HOP_BY_HOP and not name.startswith("x-forwarded-")
    ]
    return kept + _forwarding(request, scheme)


def forwarded_websocket_headers(request: HTTPRequest, scheme: str) -> list[tuple[str, str]]:
    """What an upgrade passes on: ``Origin``, ``Cookie`` and the forwarding headers.

    ``Sec-WebSocket-Protocol`` is not passed: the proxy's own server negotiates no subprotocol,
    so the kite must not accept one the caller never gets.
    """
    kept = [(name, value) for name, value in request.headers if name in ("origin", "cookie")]
    return kept + _forwarding(request, scheme)


def forwarded_response_headers(
    headers: Headers | Iterable[tuple[str, str]],
) -> list[tuple[str, str]]:
    """The answer's end-to-end headers (``Content-Length`` kept: the body is copied as is)."""
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in _HOP_BY_HOP or name.lower() == "content-length"
    ]
