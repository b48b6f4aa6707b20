"""SockJS transport for kite for Python.

The sans-IO layer (frames, payload decoding, per-transport framing, the fixed HTTP answers, URL
routing, the session state machine) is exported here. The anyio parts live in their own modules:
``server`` (the SockJS server on kitecore's HTTP server), ``channels`` (the kite-side streams),
``client`` (the SockJS client), ``plugin`` (the ``sockjs`` transport and its entry point) and
``conformance`` (the official suite's test application).
"""

from __future__ import annotations

from .config import SockJSConfig
from .errors import (
    CallbackError,
    FrameError,
    PayloadError,
    RequestError,
    SessionUsageError,
    SockJSError,
)
from .frames import (
    CloseFrame,
    HeartbeatFrame,
    LineFrameDecoder,
    MessagesFrame,
    OpenFrame,
    ServerFrame,
    close_frame,
    encode_client_messages,
    message_frame,
    parse_frame,
    quote,
)
from .framing import Framing, Transport
from .payload import (
    decode_jsonp_send,
    decode_websocket_message,
    decode_xhr_send,
    jsonp_callback,
)
from .routes import Route, RouteKind, allowed_methods, match_route
from .session import Output, Receiver, Session, SessionState, SessionTable

__all__ = [
    "CallbackError",
    "CloseFrame",
    "FrameError",
    "Framing",
    "HeartbeatFrame",
    "LineFrameDecoder",
    "MessagesFrame",
    "OpenFrame",
    "Output",
    "PayloadError",
    "Receiver",
    "RequestError",
    "Route",
    "RouteKind",
    "ServerFrame",
    "Session",
    "SessionState",
    "SessionTable",
    "SessionUsageError",
    "SockJSConfig",
    "SockJSError",
    "Transport",
    "allowed_methods",
    "close_frame",
    "decode_jsonp_send",
    "decode_websocket_message",
    "decode_xhr_send",
    "encode_client_messages",
    "jsonp_callback",
    "match_route",
    "message_frame",
    "parse_frame",
    "quote",
]
