"""Sans-IO WebSocket frame codec for the data phase (RFC 6455 section 5).

The opening handshake is HTTP (h11, in :mod:`kitecore.http.server` and
:mod:`kitecore.http.client`); once a connection is open this lean codec turns bytes into whole
text messages and messages into frame bytes, and :class:`kitecore.http.wscore.WebSocketCore`
keeps the connection's state on top of it. It is hand-written because the data phase is the
hot path of every RPC: a general event machinery costs several times more per message.

Rules kept here:

* no extensions are ever negotiated, so any RSV bit set is a protocol error (1002);
* a server only accepts masked frames, a client only unmasked ones (1002);
* control frames are never fragmented and carry at most 125 bytes (1002);
* a text message must be valid UTF-8 (1007); a binary message is accepted as text when it is
  valid UTF-8, otherwise it is refused (1003);
* a message larger than ``max_message_size`` is refused as soon as its frame header says so
  (1009), before its payload is buffered;
* nothing after a close frame is parsed.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Close",
    "FrameDecoder",
    "FrameError",
    "Ping",
    "Pong",
    "encode_close",
    "encode_frame",
    "encode_text",
    "mask_payload",
    "masking_key",
    "valid_close_code",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
_CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))
#: Close codes that must never appear on the wire (RFC 6455 section 7.4.1).
_RESERVED_CLOSE_CODES = frozenset((1004, 1005, 1006, 1015))

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_pack_code = struct.Struct("!H").pack


class FrameError(Exception):
    """The peer broke the WebSocket framing rules; ``code`` is the close code to answer with.

    (Not to be confused with :class:`kitecore.ProtocolError`, a malformed dnode message.)
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping frame: answer with a pong carrying the same payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong frame (nothing to do)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame; ``code`` is 1005 when the peer sent no status code."""

    code: int
    reason: str


ControlEvent = Ping | Pong | Close


def valid_close_code(code: int) -> bool:
    """Whether ``code`` may be sent in a close frame."""
    return (1000 <= code <= 1014 and code not in _RESERVED_CLOSE_CODES) or 3000 <= code <= 4999


#: Payloads up to this many 4-byte words get their key stream by arithmetic (below).
_REPEAT_WORDS = 1024
#: 1 in the low bit of each of _REPEAT_WORDS 32-bit words: key * (this >> 32 * (max - w)) is
#: the key repeated w times, as an integer (one 4 KiB integer, made once).
_REPEAT = ((1 << (32 * _REPEAT_WORDS)) - 1) // 0xFFFFFFFF
_from_bytes = int.from_bytes


def _mask_payload_py(key: bytes | bytearray, payload: bytes | bytearray) -> bytes:
    """:func:`mask_payload` in Python (without the ``kitecore[speed]`` extra)."""
    n = len(payload)
    if not n:
        return b""
    # The payload and the key repeated over it as two integers, XORed. Every frame a client
    # sends and a server receives is masked: for the usual sizes the repeated key is made by
    # a multiplication rather than from a repeated byte string (a third faster for a 300-byte
    # request); for long payloads the byte string is cheaper.
    words = n >> 2
    if words <= _REPEAT_WORDS:
        k = _from_bytes(key, "little")
        stream = k * (_REPEAT >> (32 * (_REPEAT_WORDS - words)))
        tail = n & 3
        if tail:
            stream |= (k & ((1 << (8 * tail)) - 1)) << (32 * words)
    else:
        stream = _from_bytes((key * (words + 1))[:n], "little")
    return (_from_bytes(payload, "little") ^ stream).to_bytes(n, "little")


# The ``kitecore[speed]`` extra: the C masking function of the ``websockets`` library, some
# ten times faster than the integer arithmetic above (0.1 against 1 us for a 300-byte
# request; every request a client sends is masked, and unmasked by the server).
_apply_mask: Callable[[bytes | bytearray, bytes | bytearray], bytes] | None
try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - installed with the test and speed extras
    _apply_mask = None


def mask_payload(key: bytes | bytearray, payload: bytes | bytearray) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (masking and unmasking are the same)."""
    if _apply_mask is not None:
        return _apply_mask(payload, key)
    return _mask_payload_py(key, payload)


#: Masking keys drawn from the system's random source per ``os.urandom`` call: a client masks
#: every frame it sends, and one system call per frame costs more than the masking itself.
_KEYS_PER_DRAW = 1024
_keys = b""
_key_pos = 0


def _forget_keys() -> None:
    """Drop the keys drawn so far (in a forked child, which must not repeat its parent's)."""
    global _keys, _key_pos
    _keys, _key_pos = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_keys)


def masking_key() -> bytes:
    """A fresh 4-byte masking key from ``os.urandom`` (RFC 6455 section 5.3: unpredictable),
    drawn in batches. Threads sharing the batch may rarely get the same key; every key is
    still one the peer and the network could not predict."""
    global _keys, _key_pos
    pos = _key_pos
    if pos >= len(_keys):
        _keys, pos = os.urandom(4 * _KEYS_PER_DRAW), 0
    _key_pos = pos + 4
    return _keys[pos : pos + 4]


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame with ``opcode`` and ``payload``; clients set ``mask`` (RFC 6455 5.3)."""
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = bytes((0x80 | opcode, n | mask_bit))
    elif n < 65536:
        header = _pack_short(0x80 | opcode, 126 | mask_bit, n)
    else:
        header = _pack_long(0x80 | opcode, 127 | mask_bit, n)
    if mask:
        key = masking_key()
        return header + key + mask_payload(key, payload)
    return header + payload


def encode_text(text: str, *, mask: bool) -> bytes:
    """One final text frame carrying ``text``."""
    return encode_frame(OP_TEXT, text.encode(), mask=mask)


def encode_close(code: int, reason: str, *, mask: bool) -> bytes:
    """A close frame; code 1005 means "no status" and sends an empty payload."""
    if code == 1005:
        return encode_frame(OP_CLOSE, b"", mask=mask)
    # Control frames carry at most 125 bytes: the code takes 2, the reason is truncated.
    reason_bytes = reason.encode()[:123]
    while True:
        try:
            reason_bytes.decode()
            break
        except UnicodeDecodeError:
            reason_bytes = reason_bytes[:-1]
    return encode_frame(OP_CLOSE, _pack_code(code) + reason_bytes, mask=mask)


class FrameDecoder:
    """Turns received bytes into whole messages (``messages``) and control events.

    ``feed(data)`` parses every complete frame in the buffered bytes at once: the decoded
    texts are appended to the ``messages`` deque and the control frames are returned in
    order. ``expect_masked`` is True on the server side.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_frag_len",
        "_frag_opcode",
        "_frag_parts",
        "_mask_bit",
        "max_message_size",
        "messages",
    )

    def __init__(self, *, expect_masked: bool, max_message_size: int) -> None:
        self.messages: deque[str] = deque()
        self.max_message_size = max_message_size
        self._mask_bit = 0x80 if expect_masked else 0
        self._buffer = bytearray()
        self._frag_opcode = 0
        self._frag_parts: list[bytes] = []
        self._frag_len = 0
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (an incomplete frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[ControlEvent]:
        """Parse ``data`` (appended to any leftover); raise :class:`FrameError` on misuse."""
        if self._closed:
            return []
        buffer = self._buffer
        if buffer:
            buffer += data
            buf: bytes | bytearray = buffer
        else:
            buf = data
        controls: list[ControlEvent] = []
        messages = self.messages
        mask_bit = self._mask_bit
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length >= 126:
                if length == 126:
                    if n - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    start = pos + 4
                else:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    start = pos + 10
            opcode = b0 & 0x0F
            if b0 & 0x70:
                raise FrameError(1002, "reserved bits set without a negotiated extension")
            if (b1 & 0x80) != mask_bit:
                raise FrameError(
                    1002, "client frames must be masked" if mask_bit else "server frame is masked"
                )
            if opcode in _DATA_OPCODES:
                if self._frag_len + length > self.max_message_size:
                    raise FrameError(
                        1009, f"message larger than the {self.max_message_size} byte limit"
                    )
            elif opcode in _CONTROL_OPCODES:
                if not b0 & 0x80 or length > 125:
                    raise FrameError(1002, "control frames must be final and at most 125 bytes")
            else:
                raise FrameError(1002, f"unknown opcode {opcode:#x}")
            if mask_bit:
                key_end = start + 4
                end = key_end + length
                if end > n:
                    break
                payload: bytes | bytearray = mask_payload(buf[start:key_end], buf[key_end:end])
            else:
                end = start + length
                if end > n:
                    break
                payload = buf[start:end]
            pos = end

            if opcode == OP_TEXT and b0 & 0x80 and not self._frag_opcode:
                # The hot path: one whole text message in one frame.
                try:
                    messages.append(payload.decode())
                except UnicodeDecodeError:
                    raise FrameError(1007, "text message is not valid UTF-8") from None
            elif opcode in _CONTROL_OPCODES:
                if opcode == OP_PING:
                    controls.append(Ping(bytes(payload)))
                elif opcode == OP_PONG:
                    controls.append(Pong(bytes(payload)))
                else:
                    controls.append(self._close_event(payload))
                    self._closed = True
                    break
            else:
                self._data_frame(opcode, bool(b0 & 0x80), payload)

        if buf is buffer:
            del buffer[:pos]
        elif pos < n and not self._closed:
            self._buffer = bytearray(memoryview(buf)[pos:])
        return controls

    def _data_frame(self, opcode: int, fin: bool, payload: bytes | bytearray) -> None:
        """Handle a fragment or a non-text / fragmented data frame."""
        if opcode == OP_CONTINUATION:
            if not self._frag_opcode:
                raise FrameError(1002, "continuation frame without a message to continue")
        else:
            if self._frag_opcode:
                raise FrameError(1002, "new message started inside a fragmented message")
            self._frag_opcode = opcode
        self._frag_parts.append(bytes(payload))
        self._frag_len += len(payload)
        if not fin:
            return
        whole = b"".join(self._frag_parts)
        message_opcode = self._frag_opcode
        self._frag_opcode = 0
        self._frag_parts = []
        self._frag_len = 0
        try:
            self.messages.append(whole.decode())
        except UnicodeDecodeError:
            if message_opcode == OP_TEXT:
                raise FrameError(1007, "text message is not valid UTF-8") from None
            raise FrameError(1003, "binary message is not UTF-8 text") from None

    @staticmethod
    def _close_event(payload: bytes | bytearray) -> Close:
        if not payload:
            return Close(1005, "")
        if len(payload) == 1:
            raise FrameError(1002, "close frame with a 1-byte payload")
        code = (payload[0] << 8) | payload[1]
        if not valid_close_code(code):
            raise FrameError(1002, f"invalid close code {code}")
        try:
            reason = bytes(payload[2:]).decode()
        except UnicodeDecodeError:
            raise FrameError(1007, "close reason is not valid UTF-8") from None
        return Close(code, reason)
