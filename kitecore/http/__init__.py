"""The core's I/O layer: a small HTTP/1.1 + WebSocket server and client on anyio.

h11 parses HTTP, wsproto's helpers check the WebSocket handshake, and a lean sans-IO frame
codec (:mod:`kitecore.http.frames`) carries the data phase. Transports build on these.
"""

from kitecore.http.client import HTTPClient, HTTPResult, StreamingResponse, connect_websocket
from kitecore.http.errors import HandshakeError, HTTPProtocolError, WebSocketProtocolError
from kitecore.http.headers import Headers
from kitecore.http.server import (
    HTTPHandler,
    HTTPRequest,
    HTTPResponse,
    HTTPServer,
    WebSocketHandler,
)
from kitecore.http.websocket import DEFAULT_MAX_MESSAGE_SIZE, WebSocketConnection

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HTTPClient",
    "HTTPHandler",
    "HTTPProtocolError",
    "HTTPRequest",
    "HTTPResponse",
    "HTTPResult",
    "HTTPServer",
    "HandshakeError",
    "Headers",
    "StreamingResponse",
    "WebSocketConnection",
    "WebSocketHandler",
    "WebSocketProtocolError",
    "connect_websocket",
]
