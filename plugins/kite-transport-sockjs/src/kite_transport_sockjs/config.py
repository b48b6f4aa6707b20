"""Server options of the SockJS transport, with Kite's defaults (protocol.md section 5.1)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SOCKJS_URL", "SockJSConfig"]

#: Where the iframe page loads the SockJS client from (must be an absolute or rooted URL).
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"


@dataclass(frozen=True, slots=True)
class SockJSConfig:
    """Knobs of one SockJS service (one prefix, normally ``/kite``).

    Times are in seconds, sizes in bytes. Kite's Go servers use a 10 s heartbeat, a 10 s
    disconnect delay, a 128 KiB streaming response limit, websocket on, raw websocket off and no
    JSESSIONID cookie; those are the defaults here. The SockJS conformance app uses a
    4096-byte response limit.
    """

    heartbeat_delay: float = 10.0
    disconnect_delay: float = 10.0
    response_limit: int = 128 * 1024
    websocket: bool = True
    raw_websocket: bool = False
    jsessionid: bool = False
    sockjs_url: str = DEFAULT_SOCKJS_URL

    def __post_init__(self) -> None:
        if self.heartbeat_delay <= 0 or self.disconnect_delay <= 0:
            raise ValueError("heartbeat_delay and disconnect_delay must be positive")
        if self.response_limit < 1:
            raise ValueError("response_limit must be at least 1 byte")
