"""The state of one open WebSocket connection, without I/O (sans-IO, like h11 and wsproto).

A driver (:mod:`kitecore.http.anyio_driver`, :mod:`kitecore.http.asyncio_driver`) owns the
socket; it feeds what it reads to :meth:`WebSocketCore.receive_data` and writes whatever bytes
the core's methods return. The core never reads, writes, sleeps or looks at a clock.

Rules it keeps (RFC 6455; framing rules are in :mod:`kitecore.http.frames`):

* received messages are appended to :attr:`WebSocketCore.messages` (whole texts, in order);
* a ping is answered with a pong carrying its payload; while the driver says its writes are
  blocked (the peer does not read) only the latest ping is remembered and answered once they
  resume (section 5.5.3 allows answering only the most recent);
* a close frame from the peer is echoed with its code (section 5.5.1) unless ours was sent
  already; nothing after it is parsed; a framing error is answered with a close frame carrying
  the matching code, and :attr:`WebSocketCore.error` holds it for the receiver (raised once);
* one close frame at most ever leaves, and no message after it;
* ``close_code`` / ``close_reason`` are those of the first close frame sent or received, or
  1006 when the connection was lost without one;
* flow control: the driver reports the bytes queued for the peer; past
  :data:`WRITE_HIGH_WATER` a write that would queue more than ``max_outbound_bytes`` overflows
  (close code 1008); reading should pause while :meth:`WebSocketCore.inbound_backlog`
  says that too much received text waits to be taken.
"""

from __future__ import annotations

import logging
from collections import deque

import anyio

from kitecore.http.errors import WebSocketProtocolError
from kitecore.http.frames import (
    OP_PING,
    OP_PONG,
    Close,
    FrameDecoder,
    FrameError,
    Ping,
    encode_close,
    encode_frame,
    encode_text,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OUTBOUND_LIMIT_CLOSE",
    "WRITE_HIGH_WATER",
    "WebSocketCore",
]

logger = logging.getLogger(__name__)

#: The default limit on one received message (16 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Bytes queued for the peer past which senders wait (and an accepting side stops reading).
WRITE_HIGH_WATER = 64 * 1024
#: The close code and reason of a connection closed because its peer does not read.
OUTBOUND_LIMIT_CLOSE = (1008, "outbound buffer limit: peer does not read")
#: Unread messages past which a driver stops reading (until they are all taken).
PAUSE_MESSAGES = 256
#: Bytes read while messages were waiting past which a driver stops reading.
PAUSE_BYTES = 1 << 20


class WebSocketCore:
    """One WebSocket connection's protocol state; ``client`` selects the role (clients mask).

    Every method that produces bytes for the wire returns them (``b""`` for nothing); the
    caller writes them in the order it got them.
    """

    __slots__ = (
        "_decoder",
        "_pong_due",
        "_read_since_empty",
        "close_code",
        "close_reason",
        "close_received",
        "close_sent",
        "error",
        "local_closed",
        "mask",
        "max_outbound_bytes",
        "messages",
        "writes_blocked",
    )

    def __init__(
        self,
        *,
        client: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_outbound_bytes: int | None = None,
    ) -> None:
        self.mask = client
        self._decoder = FrameDecoder(expect_masked=not client, max_message_size=max_message_size)
        #: Whole received texts not yet taken by the application, oldest first.
        self.messages: deque[str] = self._decoder.messages
        self.max_outbound_bytes = max_outbound_bytes
        #: Our close frame was produced (it may still be on its way).
        self.close_sent = False
        #: The peer's side is over: its close frame, a framing error, or the link was lost.
        self.close_received = False
        #: The application closed the connection (nothing is delivered to it any more).
        self.local_closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        #: The peer's framing error, for the receiver to raise once (then None again).
        self.error: WebSocketProtocolError | None = None
        #: Set by the driver while the peer does not take what is written.
        self.writes_blocked = False
        self._pong_due: bytes | None = None
        self._read_since_empty = 0

    # --- state ---------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether messages may still be sent."""
        return not (self.close_sent or self.close_received or self.local_closed)

    @property
    def closed(self) -> bool:
        """Whether the connection is over for the application (either side closed it)."""
        return self.local_closed or self.close_received

    @property
    def buffered(self) -> int:
        """Received bytes of an incomplete frame."""
        return self._decoder.buffered

    def closed_error(self) -> Exception:
        """What a send on a connection that is not :attr:`open` raises."""
        if self.local_closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(
            f"websocket is closed ({self.close_code} {self.close_reason})".strip()
        )

    # --- receiving -----------------------------------------------------------------------------

    def check_receivable(self) -> None:
        """Raise what a receive finding no message waiting must raise, or return (wait for
        more): :class:`anyio.ClosedResourceError` once closed on this side, the protocol error
        (raised once), :class:`anyio.EndOfStream` once the peer has closed. No local names the
        exception, so its traceback holds no cycle back to it (a closed connection is freed by
        reference counting)."""
        if self.local_closed:
            raise anyio.ClosedResourceError
        if self.error is not None:
            try:
                raise self.error
            finally:
                self.error = None
        if self.close_received:
            raise anyio.EndOfStream

    def receive_data(self, data: bytes) -> bytes:
        """Parse ``data``; whole messages go to :attr:`messages`. Returns the bytes to send
        in answer (pongs, the echo of a close frame, a close frame for a framing error)."""
        if self.close_received:
            return b""
        messages = self.messages
        if not messages:
            self._read_since_empty = 0
        try:
            controls = self._decoder.feed(data)
        except FrameError as exc:
            return self.fail(exc.code, exc.reason)
        if messages:
            if self.local_closed:
                messages.clear()  # nobody takes them any more
            else:
                self._read_since_empty += len(data)
        if not controls:
            return b""
        out: list[bytes] = []
        for event in controls:
            if isinstance(event, Ping):
                if self.close_sent:
                    continue
                if self.writes_blocked:
                    self._pong_due = event.payload
                else:
                    out.append(encode_frame(OP_PONG, event.payload, mask=self.mask))
            elif isinstance(event, Close):
                self.close_received = True
                if self.close_code is None:
                    self.close_code, self.close_reason = event.code, event.reason
                out.append(self.close(event.code, ""))
                break
        return b"".join(out)

    def inbound_backlog(self) -> bool:
        """Whether so much received text waits to be taken that the driver should stop
        reading (it reads again once :attr:`messages` is empty)."""
        return len(self.messages) > PAUSE_MESSAGES or self._read_since_empty > PAUSE_BYTES

    def fail(self, code: int, reason: str) -> bytes:
        """The peer broke the protocol (or must be dropped): mark the connection over, keep
        the error for the receiver, return the close frame to send."""
        logger.debug("websocket protocol error, closing with %d: %s", code, reason)
        self.close_received = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self.local_closed:
            self.error = WebSocketProtocolError(code, reason)
        return self.close(code, reason)

    def connection_lost(self) -> None:
        """The link ended (EOF, reset) with or without a close handshake before."""
        if not self.close_received:
            self.close_received = True
            if self.close_code is None:
                self.close_code, self.close_reason = 1006, "connection lost"

    # --- sending -------------------------------------------------------------------------------

    def encode_message(self, text: str) -> bytes:
        """The frame for one text message; raises :meth:`closed_error` when not :attr:`open`."""
        if self.close_sent or self.close_received or self.local_closed:
            raise self.closed_error()
        return encode_text(text, mask=self.mask)

    def encode_messages(self, texts: list[str]) -> bytes:
        """The frames for several messages, concatenated (one write)."""
        if self.close_sent or self.close_received or self.local_closed:
            raise self.closed_error()
        mask = self.mask
        if len(texts) == 1:
            if not mask:  # the server's answer, per message: encode_text inlined
                payload = texts[0].encode()
                n = len(payload)
                if n < 126:
                    return bytes((0x81, n)) + payload
                return encode_text(texts[0], mask=False)
            return encode_text(texts[0], mask=mask)
        return b"".join([encode_text(text, mask=mask) for text in texts])

    def ping(self) -> bytes:
        """A ping frame (a keepalive), or ``b""`` when the connection is not open."""
        if not self.open:
            return b""
        return encode_frame(OP_PING, b"", mask=self.mask)

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """Our close frame, once (``b""`` if it was produced already)."""
        if self.close_sent:
            return b""
        self.close_sent = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        return encode_close(code, reason, mask=self.mask)

    def writes_resumed(self) -> bytes:
        """The peer takes our bytes again: the pong for the latest ping it sent meanwhile."""
        self.writes_blocked = False
        pong, self._pong_due = self._pong_due, None
        if pong is None or self.close_sent or self.close_received:
            return b""
        return encode_frame(OP_PONG, pong, mask=self.mask)

    def outbound_overflow(self, queued: int, adding: int) -> bool:
        """Whether writing ``adding`` more bytes with ``queued`` already waiting for the peer
        passes ``max_outbound_bytes`` (only ever once past :data:`WRITE_HIGH_WATER`)."""
        limit = self.max_outbound_bytes
        return limit is not None and queued > WRITE_HIGH_WATER and queued + adding > limit

    def fail_outbound(self, queued: int) -> bytes:
        """The peer let too much pile up: end the connection with :data:`OUTBOUND_LIMIT_CLOSE`
        (returns the close frame) and log it; the driver then raises
        :class:`anyio.BrokenResourceError` and drops what is queued."""
        code, reason = OUTBOUND_LIMIT_CLOSE
        logger.warning(
            "closing websocket with %d: %d bytes queued for a peer that does not read (limit %s)",
            code,
            queued,
            self.max_outbound_bytes,
        )
        frame = self.fail(code, reason)
        self.error = None  # the sender learns it; the receiver just sees the end
        return frame
