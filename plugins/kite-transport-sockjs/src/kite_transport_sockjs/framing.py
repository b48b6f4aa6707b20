"""How each SockJS transport wraps frames on the wire, and its fixed response prelude.

A :class:`Framing` is pure data plus :meth:`Framing.wrap`; it knows nothing about sessions.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

__all__ = ["HTMLFILE_PRELUDE_MIN", "XHR_STREAMING_PRELUDE", "Framing", "Transport"]


class Transport(enum.Enum):
    """The session transports served under ``/<server>/<session>/``; value = URL segment."""

    WEBSOCKET = "websocket"
    XHR = "xhr"
    XHR_SEND = "xhr_send"
    XHR_STREAMING = "xhr_streaming"
    EVENTSOURCE = "eventsource"
    HTMLFILE = "htmlfile"
    JSONP = "jsonp"
    JSONP_SEND = "jsonp_send"

    @property
    def receives(self) -> bool:
        """Whether this transport carries frames to the client (``*_send`` ones do not)."""
        return self not in (Transport.XHR_SEND, Transport.JSONP_SEND)


#: IE needs 2 KiB before it hands streamed data to the page.
XHR_STREAMING_PRELUDE = "h" * 2048 + "\n"

#: Safari needs at least this many bytes before it starts parsing an HTML page.
HTMLFILE_PRELUDE_MIN = 1024

_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>
"""

_CONTENT_TYPES = {
    Transport.XHR: "application/javascript; charset=UTF-8",
    Transport.XHR_STREAMING: "application/javascript; charset=UTF-8",
    Transport.EVENTSOURCE: "text/event-stream",
    Transport.HTMLFILE: "text/html; charset=UTF-8",
    Transport.JSONP: "application/javascript; charset=UTF-8",
}

# EventSource data lines cannot hold CR, LF or NUL; sockjs-client decodeURI()s each event, so
# those and '%' itself are percent-encoded.
_EVENTSOURCE_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


def _js_string(frame: str) -> str:
    # A JSON string is a JS string literal. Escaping '<' keeps a message containing "</script>"
    # from ending the htmlfile script block; U+2028/9 are escaped too (old JS forbids them raw).
    text = json.dumps(frame, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@dataclass(frozen=True, slots=True)
class Framing:
    """The wire format of one receiving transport.

    ``callback`` is the validated JSONP/htmlfile callback name (see
    :func:`kite_transport_sockjs.payload.jsonp_callback`); other transports ignore it.
    """

    transport: Transport
    callback: str = ""

    def __post_init__(self) -> None:
        if not self.transport.receives:
            raise ValueError(f"{self.transport.value} does not carry frames to the client")
        if self.transport in (Transport.HTMLFILE, Transport.JSONP) and not self.callback:
            raise ValueError(f"{self.transport.value} needs a callback name")

    @property
    def streaming(self) -> bool:
        """True if one response carries many frames; polling transports end after one frame."""
        return self.transport not in (Transport.XHR, Transport.JSONP)

    @property
    def limited(self) -> bool:
        """True for HTTP streaming responses, which end after ``response_limit`` bytes so the
        browser can free what it buffered; websocket has no such limit."""
        return self.streaming and self.transport is not Transport.WEBSOCKET

    @property
    def content_type(self) -> str:
        """Content-Type of the HTTP response ("" for websocket)."""
        return _CONTENT_TYPES.get(self.transport, "")

    @property
    def prelude(self) -> str:
        """Text written once at the start of the response, before any frame ("" if none)."""
        if self.transport is Transport.XHR_STREAMING:
            return XHR_STREAMING_PRELUDE
        if self.transport is Transport.EVENTSOURCE:
            return "\r\n"  # Opera needs a line break first
        if self.transport is Transport.HTMLFILE:
            head = _HTMLFILE_HEAD.format(callback=self.callback)
            return head + " " * max(0, HTMLFILE_PRELUDE_MIN - len(head)) + "\r\n\r\n"
        return ""

    def wrap(self, frame: str) -> str:
        """``frame`` as it goes on the wire for this transport."""
        transport = self.transport
        if transport in (Transport.XHR, Transport.XHR_STREAMING):
            return frame + "\n"
        if transport is Transport.EVENTSOURCE:
            return "data: " + frame.translate(_EVENTSOURCE_ESCAPES) + "\r\n\r\n"
        if transport is Transport.HTMLFILE:
            return "<script>\np(" + _js_string(frame) + ");\n</script>\r\n"
        if transport is Transport.JSONP:
            # The leading comment defeats the Flash/SWF content-sniffing exploit.
            return "/**/" + self.callback + "(" + _js_string(frame) + ");\r\n"
        return frame  # websocket: one frame per text message
