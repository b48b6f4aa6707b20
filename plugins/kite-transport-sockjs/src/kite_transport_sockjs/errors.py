"""Errors of the SockJS layer, split by who is at fault (as h11 does).

* :class:`RequestError` and its subclasses: the remote client sent something the SockJS protocol
  answers with an error response. Each carries the exact HTTP status and body text to send.
* :class:`FrameError`: a SockJS server sent a frame the client side cannot parse.
* :class:`SessionUsageError`: this process misused the sans-IO API (a local bug).
"""

from __future__ import annotations

__all__ = [
    "CallbackError",
    "FrameError",
    "PayloadError",
    "RequestError",
    "SessionUsageError",
    "SockJSError",
]


class SockJSError(Exception):
    """Base class of every error raised by this package."""


class RequestError(SockJSError):
    """A client request that must be answered with an error response.

    ``status`` and ``body`` are exactly what goes on the wire (``text/plain; charset=UTF-8``).
    """

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class PayloadError(RequestError):
    """A message payload (``xhr_send``, ``jsonp_send`` or a websocket frame) is unusable:
    empty (``Payload expected.``) or not JSON (``Broken JSON encoding.``)."""


class CallbackError(RequestError):
    """The ``c``/``callback`` query parameter of ``jsonp`` or ``htmlfile`` is missing or invalid."""


class FrameError(SockJSError):
    """A frame received from a SockJS server is malformed (client side)."""


class SessionUsageError(SockJSError):
    """The sans-IO session API was called in a way its rules forbid (a bug in the caller)."""
