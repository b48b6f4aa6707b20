"""Status, headers and bodies of every SockJS HTTP answer, as plain values.

Request headers come in as a mapping with lower-case names; the answers are :class:`Response`
values (header names in their usual case). Streaming and polling answers are split: this module
gives the response head (:func:`receiving_head`), the session gives the body chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

from .config import SockJSConfig
from .errors import RequestError
from .framing import Framing, Transport
from .info import iframe_etag, iframe_page, info_body
from .routes import Route, RouteKind

__all__ = [
    "CACHE_SECONDS",
    "NO_CACHE",
    "Response",
    "cache_headers",
    "cors_headers",
    "error",
    "greeting",
    "iframe",
    "info",
    "is_websocket_upgrade",
    "jsessionid_headers",
    "method_not_allowed",
    "not_found",
    "preflight",
    "receiving_head",
    "send_accepted",
    "transport_headers",
    "websocket_bad_request",
]

Headers = tuple[tuple[str, str], ...]

#: Cache lifetime of cacheable answers (iframe page, OPTIONS): one year.
CACHE_SECONDS = 365 * 24 * 60 * 60
NO_CACHE = ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")
_TEXT = ("Content-Type", "text/plain; charset=UTF-8")
_CORS_TRANSPORTS = (
    Transport.XHR,
    Transport.XHR_SEND,
    Transport.XHR_STREAMING,
    Transport.EVENTSOURCE,
)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer (or, from :func:`receiving_head`, the head of a streamed one)."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


# -- header helpers ---------------------------------------------------------------------------


def cors_headers(request: Mapping[str, str]) -> Headers:
    """CORS answer headers: the request's Origin echoed (``null`` too) with credentials
    allowed, or ``*`` without credentials when there is no Origin; requested headers echoed."""
    origin = request.get("origin", "")
    headers: list[tuple[str, str]] = []
    if origin:
        headers += [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
        ]
    else:
        headers.append(("Access-Control-Allow-Origin", "*"))
    headers.append(("Vary", "Origin"))
    requested = request.get("access-control-request-headers", "")
    if requested:
        headers.append(("Access-Control-Allow-Headers", requested))
    return tuple(headers)


def cache_headers(now: float, seconds: int = CACHE_SECONDS) -> Headers:
    """Headers that make an answer cacheable for ``seconds``; ``now`` is Unix time."""
    return (
        ("Cache-Control", f"public, max-age={seconds}"),
        ("Expires", formatdate(now + seconds, usegmt=True)),
    )


def jsessionid_headers(config: SockJSConfig, request: Mapping[str, str]) -> Headers:
    """``Set-Cookie: JSESSIONID=...; path=/`` when the option is on, echoing the client's
    cookie value or ``dummy`` (sticky load balancers key on this cookie)."""
    if not config.jsessionid:
        return ()
    value = "dummy"
    for part in request.get("cookie", "").split(";"):
        name, _, cookie_value = part.partition("=")
        if name.strip() == "JSESSIONID" and cookie_value.strip():
            value = cookie_value.strip()
            break
    return (("Set-Cookie", f"JSESSIONID={value}; path=/"),)


def transport_headers(
    transport: Transport, config: SockJSConfig, request: Mapping[str, str]
) -> Headers:
    """Headers every answer on a session URL carries: cookie, no-cache, and CORS for the
    XHR-style transports (JSONP and htmlfile are loaded by script/iframe tags, not XHR)."""
    headers = (*jsessionid_headers(config, request), NO_CACHE)
    if transport in _CORS_TRANSPORTS:
        headers += cors_headers(request)
    return headers


# -- whole answers ----------------------------------------------------------------------------


def greeting() -> Response:
    """``GET <prefix>`` and ``<prefix>/``."""
    return Response(200, (_TEXT,), b"Welcome to SockJS!\n")


def not_found() -> Response:
    """Unknown URL, unknown session on a ``*_send`` URL."""
    return Response(404, (_TEXT,), b"404 Error: Page not found\n")


def method_not_allowed(methods: tuple[str, ...]) -> Response:
    """Known URL, wrong method: no body and no Content-Type, only ``Allow``."""
    return Response(405, (("Allow", ", ".join(methods)),))


def error(exc: RequestError, extra: Headers = ()) -> Response:
    """The answer to a :class:`RequestError` (500 ``Payload expected.`` and friends)."""
    return Response(exc.status, (*extra, _TEXT), exc.body.encode("utf-8"))


def info(config: SockJSConfig, request: Mapping[str, str], entropy: int | None = None) -> Response:
    """``GET /info``: never cached, CORS, no cookie."""
    headers = (
        ("Content-Type", "application/json; charset=UTF-8"),
        NO_CACHE,
        *cors_headers(request),
    )
    return Response(200, headers, info_body(config, entropy).encode("utf-8"))


def preflight(
    route: Route, config: SockJSConfig, request: Mapping[str, str], now: float
) -> Response:
    """``OPTIONS`` on ``/info`` or an XHR transport URL: 204, cacheable for a year."""
    methods = "OPTIONS, GET" if route.kind is RouteKind.INFO else "OPTIONS, POST"
    headers = (
        *jsessionid_headers(config, request),
        *cache_headers(now),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Max-Age", str(CACHE_SECONDS)),
        *cors_headers(request),
    )
    return Response(204, headers)


def iframe(config: SockJSConfig, request: Mapping[str, str], now: float) -> Response:
    """``GET /iframe*.html``: cacheable with a stable ETag; 304 on a matching If-None-Match."""
    page = iframe_page(config.sockjs_url)
    etag = iframe_etag(page)
    if request.get("if-none-match") == etag:
        return Response(304)
    headers = (
        ("Content-Type", "text/html; charset=UTF-8"),
        *cache_headers(now),
        ("ETag", etag),
    )
    return Response(200, headers, page.encode("utf-8"))


def send_accepted(
    transport: Transport, config: SockJSConfig, request: Mapping[str, str]
) -> Response:
    """Success answer of ``xhr_send`` (204, yet with ``text/plain``: Firefox otherwise guesses
    XML) or ``jsonp_send`` (200 ``ok``: Konqueror mishandles 204)."""
    headers = (*transport_headers(transport, config, request), _TEXT)
    if transport is Transport.JSONP_SEND:
        return Response(200, headers, b"ok")
    if transport is Transport.XHR_SEND:
        return Response(204, headers)
    raise ValueError(f"{transport.value} is not a send transport")


def receiving_head(framing: Framing, config: SockJSConfig, request: Mapping[str, str]) -> Response:
    """Status and headers of a receiving response (xhr, xhr_streaming, eventsource, htmlfile,
    jsonp); the body is what :meth:`Session.attach` and :meth:`Session.flush` return."""
    headers = (
        ("Content-Type", framing.content_type),
        *transport_headers(framing.transport, config, request),
    )
    if framing.transport is Transport.JSONP:
        headers += (("X-Content-Type-Options", "nosniff"),)
    return Response(200, headers)


def is_websocket_upgrade(method: str, request: Mapping[str, str]) -> bool:
    """Whether a request to ``.../websocket`` is a usable upgrade: GET, ``Upgrade: websocket``
    and ``upgrade`` among the ``Connection`` tokens (proxies that rewrite it break websocket)."""
    connection = {t.strip().lower() for t in request.get("connection", "").split(",")}
    return (
        method == "GET"
        and request.get("upgrade", "").strip().lower() == "websocket"
        and "upgrade" in connection
    )


def websocket_bad_request() -> Response:
    """Answer to a non-upgrade GET on a websocket URL."""
    return Response(400, (_TEXT,), b"Not a valid websocket request")
