"""Exceptions raised by :mod:`kitecore.http`.

Connection-level failures are :class:`OSError` subclasses (as a refused connection or a timeout
already is), so a caller that catches ``OSError`` around a dial catches ours too. WebSocket
protocol violations during the data phase are :class:`anyio.BrokenResourceError` subclasses, so
code that treats a broken stream as "connection over" needs no special case.
"""

from __future__ import annotations

import anyio

__all__ = ["HTTPProtocolError", "HandshakeError", "WebSocketProtocolError"]


class HandshakeError(ConnectionError):
    """The server answered a WebSocket upgrade request with something other than 101.

    ``status_code`` is the HTTP status (0 when the answer was a 101 that failed validation)
    and ``body`` the start of the response body. SockJS clients fall back to XHR on this.
    """

    def __init__(self, status_code: int, body: bytes = b"", message: str = "") -> None:
        detail = message or f"server answered {status_code} instead of 101 Switching Protocols"
        super().__init__(f"websocket handshake failed: {detail}")
        self.status_code = status_code
        self.body = body


class HTTPProtocolError(ConnectionError):
    """The peer sent something that is not valid HTTP/1.1 (or closed mid-message)."""


class WebSocketProtocolError(anyio.BrokenResourceError):
    """The peer broke the WebSocket protocol; the connection was closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"websocket closed with {code}: {reason}")
        self.code = code
        self.reason = reason
