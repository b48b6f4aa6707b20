"""URL layout of a SockJS service, relative to its prefix (``/kite``).

``match_route`` says which endpoint a path names; ``allowed_methods`` which HTTP methods it
takes, so the server can answer 404 (no route) or 405 (wrong method) without further logic.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .config import SockJSConfig
from .framing import Transport

__all__ = ["Route", "RouteKind", "allowed_methods", "match_route"]


class RouteKind(enum.Enum):
    """The kinds of SockJS endpoint."""

    GREETING = "greeting"
    INFO = "info"
    IFRAME = "iframe"
    RAW_WEBSOCKET = "raw_websocket"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Route:
    """A matched endpoint; session routes carry the ids and the transport."""

    kind: RouteKind
    server_id: str = ""
    session_id: str = ""
    transport: Transport | None = None


_IFRAME = re.compile(r"/iframe[0-9a-z_.-]*\.html")
# server and session ids: any non-empty segment without '/' or '.'
_SESSION = re.compile(r"/([^/.]+)/([^/.]+)/([a-z_]+)")
_TRANSPORTS = {t.value: t for t in Transport}

_METHODS: dict[Transport, tuple[str, ...]] = {
    Transport.WEBSOCKET: ("GET",),
    Transport.XHR: ("POST", "OPTIONS"),
    Transport.XHR_SEND: ("POST", "OPTIONS"),
    Transport.XHR_STREAMING: ("POST", "OPTIONS"),
    Transport.EVENTSOURCE: ("GET",),
    Transport.HTMLFILE: ("GET",),
    Transport.JSONP: ("GET",),
    Transport.JSONP_SEND: ("POST",),
}


def match_route(path: str, config: SockJSConfig) -> Route | None:
    """The endpoint ``path`` (below the prefix, without the query string) names, or None.

    Disabled endpoints (websocket, raw websocket) do not match.
    """
    if path in ("", "/"):
        return Route(RouteKind.GREETING)
    if path == "/info":
        return Route(RouteKind.INFO)
    if _IFRAME.fullmatch(path):
        return Route(RouteKind.IFRAME)
    if path == "/websocket":
        return Route(RouteKind.RAW_WEBSOCKET) if config.raw_websocket else None
    match = _SESSION.fullmatch(path)
    if match is None:
        return None
    transport = _TRANSPORTS.get(match.group(3))
    if transport is None or (transport is Transport.WEBSOCKET and not config.websocket):
        return None
    return Route(RouteKind.SESSION, match.group(1), match.group(2), transport)


def allowed_methods(route: Route) -> tuple[str, ...]:
    """HTTP methods ``route`` accepts (for dispatch and for the 405 ``Allow`` header)."""
    if route.kind is RouteKind.INFO:
        return ("GET", "OPTIONS")
    if route.transport is not None:
        return _METHODS[route.transport]
    return ("GET",)
