"""SockJS frames: what a server sends (``o``, ``h``, ``a[...]``, ``c[code,"reason"]``).

Encoding is used by the server side, :func:`parse_frame` and :class:`LineFrameDecoder` by the
client side. Frames here are transport-neutral texts; the per-transport wrapping (``\\n`` for
xhr, ``data: ...`` for eventsource, ...) lives in :mod:`kite_transport_sockjs.framing`.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kitecore.protocol import load_json

from .errors import FrameError

__all__ = [
    "ANOTHER_CONNECTION_FRAME",
    "HEARTBEAT_FRAME",
    "OPEN_FRAME",
    "CloseFrame",
    "HeartbeatFrame",
    "LineFrameDecoder",
    "MessagesFrame",
    "OpenFrame",
    "ServerFrame",
    "close_frame",
    "encode_client_messages",
    "message_frame",
    "parse_frame",
    "quote",
]

OPEN_FRAME = "o"
HEARTBEAT_FRAME = "h"

# Code points that SockJS servers send as \uXXXX escapes even though JSON allows them raw:
# controls, lone surrogates (not encodable as UTF-8), and invisible or line-breaking characters
# that browsers or proxies mangle. The conformance suite checks U+200C.. and U+FFF0.. ranges.
_ESCAPABLE = re.compile(
    "[\x00-\x1f\ud800-\udfff\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]"
)


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def _escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def quote(text: str) -> str:
    """JSON-encode ``text`` as a string literal the way SockJS servers do.

    Like ``JSON.stringify`` (non-ASCII kept as is), except that the code points SockJS treats as
    unsafe are written as lowercase ``\\uXXXX`` escapes, so the result is always valid UTF-8.
    """
    if text.isascii():  # the common case: json.dumps already escapes every ASCII control
        return _dumps(text)
    return _ESCAPABLE.sub(_escape_char, json.dumps(text, ensure_ascii=False))


def message_frame(messages: Iterable[str]) -> str:
    """The ``a[...]`` frame carrying ``messages`` in order (each one JSON string)."""
    return "a[" + ",".join(quote(m) for m in messages) + "]"


def close_frame(code: int, reason: str) -> str:
    """The ``c[code,"reason"]`` frame, e.g. ``c[3000,"Go away!"]``."""
    return f"c[{int(code)},{quote(reason)}]"


#: Sent to a second receiving request while another one is attached to the session.
ANOTHER_CONNECTION_FRAME = close_frame(2010, "Another connection still open")


def encode_client_messages(messages: Iterable[str]) -> str:
    """A client-to-server payload: a JSON array of strings (websocket frame or xhr_send body).

    Non-ASCII characters are sent as ``\\uXXXX`` escapes, which every server decodes."""
    return _dumps(list(messages))


# ---------------------------------------------------------------------------------------------
# Client side: parsing what a server sends.


@dataclass(frozen=True, slots=True)
class OpenFrame:
    """``o``: the session is open."""


@dataclass(frozen=True, slots=True)
class HeartbeatFrame:
    """``h``: keep-alive, carries nothing."""


@dataclass(frozen=True, slots=True)
class MessagesFrame:
    """``a[...]`` (or the single-message ``m"..."`` form): messages in order."""

    messages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CloseFrame:
    """``c[code,"reason"]``: the session is closed."""

    code: int
    reason: str


ServerFrame = OpenFrame | HeartbeatFrame | MessagesFrame | CloseFrame


def _load(payload: str, frame: str) -> object:
    try:
        return load_json(payload)  # bounded depth: a deep frame is broken, not a RecursionError
    except ValueError as exc:
        raise FrameError(f"broken JSON in SockJS frame {frame[:64]!r}") from exc


def parse_frame(frame: str) -> ServerFrame:
    """Parse one server frame (without transport wrapping, e.g. without xhr's ``\\n``).

    ``o`` and ``h`` ignore trailing text (sockjs-client does too; the xhr-streaming prelude is a
    line of 2048 ``h``). Raises :class:`FrameError` for anything else that is not a valid frame.
    """
    if not frame:
        raise FrameError("empty SockJS frame")
    kind, payload = frame[0], frame[1:]
    if kind == "o":
        return OpenFrame()
    if kind == "h":
        return HeartbeatFrame()
    if kind == "a":
        value = _load(payload, frame)
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise FrameError("SockJS 'a' frame is not an array of strings")
        return MessagesFrame(tuple(value))
    if kind == "m":
        value = _load(payload, frame)
        if not isinstance(value, str):
            raise FrameError("SockJS 'm' frame is not a string")
        return MessagesFrame((value,))
    if kind == "c":
        value = _load(payload, frame)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not isinstance(value[0], int)
            or isinstance(value[0], bool)
            or not isinstance(value[1], str)
        ):
            raise FrameError('SockJS close frame is not [code, "reason"]')
        return CloseFrame(value[0], value[1])
    raise FrameError(f"unknown SockJS frame type {kind!r}")


class LineFrameDecoder:
    """Incremental decoder for newline-delimited frames (xhr polling and xhr_streaming bodies).

    Feed raw body bytes as they arrive; complete frames come out parsed. Bytes may split lines
    and UTF-8 sequences anywhere.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._partial = ""

    def feed(self, data: bytes) -> list[ServerFrame]:
        """Consume ``data`` and return the frames completed by it."""
        try:
            text = self._partial + self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise FrameError("SockJS response body is not UTF-8") from exc
        *lines, self._partial = text.split("\n")
        return [parse_frame(line) for line in lines if line]

    @property
    def pending(self) -> str:
        """Text received after the last newline (an unfinished frame)."""
        return self._partial
