"""The core's I/O layer: a small HTTP/1.1 + WebSocket server and client.

Layers, bottom up:

* :mod:`~kitecore.http.frames`: the sans-IO frame codec (bytes <-> whole messages);
* :mod:`~kitecore.http.wscore`: :class:`WebSocketCore`, one connection's sans-IO state
  (control frames, close handshake, limits, flow-control accounting);
* :mod:`~kitecore.http.websocket`: :class:`WebSocketConnection`, the interface handlers get;
  :mod:`~kitecore.http.anyio_driver` (portable: trio, TLS, any byte stream) and
  :mod:`~kitecore.http.asyncio_driver` (asyncio transports of our own) implement it;
* :mod:`~kitecore.http.server` and :mod:`~kitecore.http.client`: HTTP/1.1 through h11, the
  upgrade handshake on each side, connection limits (:mod:`~kitecore.http.limits`).
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
from kitecore.http.wscore import WebSocketCore

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
    "WebSocketCore",
    "WebSocketHandler",
    "WebSocketProtocolError",
    "connect_websocket",
]
