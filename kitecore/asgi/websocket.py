"""One accepted ASGI WebSocket as the kite's message stream.

:class:`ASGIWebSocket` gives an ASGI ``websocket`` connection the interface the kite's
transports hand to the connection layer (and the SockJS plugin wraps): an
``anyio.abc.ObjectStream[str]`` of whole text messages plus the optional write abilities
(``write_nowait``, ``pending_bytes``, ``flush``) and ``aclose(code, reason)``.

Limits, as on the kite's own server: a text message longer than ``max_message_size``
characters closes the connection with 1009, a binary message with 1003; messages written for
a peer that does not read are queued here (the ASGI server's ``send`` waits while its own
buffer is full, which is the backpressure it gives) and more than ``max_outbound_bytes``
characters queued close the connection with 1008.
"""

from __future__ import annotations

import logging
from collections import deque

import anyio
from anyio.abc import ObjectStream

from kitecore.asgi.types import Receive, Send

__all__ = ["ASGIWebSocket"]

logger = logging.getLogger(__name__)

#: Seconds :meth:`ASGIWebSocket.aclose` spends writing out what is still queued.
_CLOSE_FLUSH_TIMEOUT = 2.0


class ASGIWebSocket(ObjectStream[str]):
    """The kite's side of an accepted ASGI WebSocket (after ``websocket.accept``).

    ``close_code`` says why the connection ended: the code of the close this side sent, or
    the one the server reported in ``websocket.disconnect``.
    """

    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        max_message_size: int,
        max_outbound_bytes: int | None,
        remote_address: str = "",
    ) -> None:
        self._receive = receive
        self._send = send
        self.max_message_size = max_message_size
        self.max_outbound_bytes = max_outbound_bytes
        self.remote_address = remote_address
        self._queue: deque[str] = deque()
        self._queued = 0  # characters in _queue
        self._sending = 0  # characters the server's send is taking right now
        self._send_lock = anyio.Lock()
        self._local_closed = False
        self._remote_closed = False
        #: a close this side owes the peer (a limit it broke), sent by aclose()
        self._failure: tuple[int, str] | None = None
        self._receive_scope: anyio.CancelScope | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        """Whether the connection is over (either side closed it, or it broke)."""
        return self._local_closed or self._remote_closed

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str:
        """The next text message.

        Raises :class:`anyio.EndOfStream` once the client has gone,
        :class:`anyio.ClosedResourceError` after :meth:`aclose`, and
        :class:`anyio.BrokenResourceError` when the client broke a limit (the connection is
        then closed with 1009 or 1003).
        """
        if self._local_closed:
            raise anyio.ClosedResourceError
        if self._remote_closed:
            raise anyio.EndOfStream
        with anyio.CancelScope() as scope:
            # cancelled when this side ends the connection (a limit broken while writing)
            self._receive_scope = scope
            message = await self._receive()
        self._receive_scope = None
        if scope.cancelled_caught:
            raise self._closed_error()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            if text is None:
                await self._fail(1003, "text messages only")
            elif len(text) > self.max_message_size:
                await self._fail(1009, f"message over {self.max_message_size} characters")
            return str(text)
        if kind == "websocket.disconnect":
            self._remote_closed = True
            if self.close_code is None:
                self.close_code = int(message.get("code", 1005))
            raise anyio.EndOfStream
        raise anyio.BrokenResourceError(f"unexpected ASGI message {kind!r}")

    async def _fail(self, code: int, reason: str) -> None:
        """The client broke a limit: close with ``code`` and raise BrokenResourceError."""
        logger.warning("closing websocket from %s with %d: %s", self.remote_address, code, reason)
        self._remote_closed = True
        await self._send_close(code, reason)
        raise anyio.BrokenResourceError(f"websocket closed with {code}: {reason}")

    # --- sending -----------------------------------------------------------------------------

    def write_nowait(self, items: list[str]) -> bool:
        """Queue ``items`` for :meth:`flush` (an ASGI send always waits); always True.

        Over ``max_outbound_bytes`` queued characters the connection is closed with 1008 and
        :class:`anyio.BrokenResourceError` raised.
        """
        if self.closed:
            raise self._closed_error()
        size = sum(len(item) for item in items)
        limit = self.max_outbound_bytes
        if limit is not None and self._queued + self._sending + size > limit:
            self._overflow(self._queued + self._sending + size)
        self._queue.extend(items)
        self._queued += size
        return True

    def _closed_error(self) -> Exception:
        if self._local_closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError("the websocket is closed")

    def _overflow(self, size: int) -> None:
        code, reason = 1008, "outbound buffer limit: peer does not read"
        logger.warning(
            "closing websocket from %s with %d: %d characters queued for a peer that does "
            "not read (limit %s)",
            self.remote_address,
            code,
            size,
            self.max_outbound_bytes,
        )
        self._queue.clear()
        self._queued = 0
        self._failure = (code, reason)
        self._remote_closed = True
        if self._receive_scope is not None:  # wake the reader: the connection is over
            self._receive_scope.cancel()
        raise anyio.BrokenResourceError(f"websocket closed with {code}: {reason}")

    @property
    def pending_bytes(self) -> int:
        """Characters :meth:`write_nowait` queued for :meth:`flush`."""
        return self._queued

    @property
    def outbound_bytes(self) -> int:
        """Characters written for the peer and not yet taken by the ASGI server."""
        return self._queued + self._sending

    async def flush(self) -> None:
        """Hand what is queued to the ASGI server, one message at a time."""
        async with self._send_lock:
            queue = self._queue
            while queue:
                if self.closed:
                    raise (
                        anyio.ClosedResourceError
                        if self._local_closed
                        else anyio.BrokenResourceError
                    )
                text = queue.popleft()
                self._queued -= len(text)
                self._sending = len(text)
                try:
                    await self._send_text(text)
                finally:
                    self._sending = 0

    async def send(self, item: str) -> None:
        """Send one text message (after what is queued)."""
        self.write_nowait([item])
        await self.flush()

    async def send_many(self, items: list[str]) -> None:
        """Send several text messages (one ASGI event each)."""
        self.write_nowait(items)
        await self.flush()

    async def _send_text(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception as exc:  # each ASGI server has its own "client is gone" error
            self._remote_closed = True
            raise anyio.BrokenResourceError(f"websocket send failed: {exc!r}") from exc

    async def send_eof(self) -> None:
        """WebSocket has no half-close: this closes the connection (code 1000)."""
        await self.aclose()

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Write out what is queued (for at most a couple of seconds), then close with
        ``code`` (or with the code of a limit the client broke). Idempotent."""
        if self._local_closed:
            return
        with anyio.CancelScope(shield=True):
            if not self._remote_closed and self._queue:
                with anyio.move_on_after(_CLOSE_FLUSH_TIMEOUT):
                    try:
                        await self.flush()
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
            self._local_closed = True
            if self._failure is not None:
                code, reason = self._failure
                self._failure = None
                await self._send_close(code, reason)
            elif not self._remote_closed:
                await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        try:
            # bounded: a server's send may wait for a peer that does not read
            with anyio.move_on_after(_CLOSE_FLUSH_TIMEOUT):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # the client is already gone: nothing left to tell it
            logger.debug("websocket close to %s not sent", self.remote_address, exc_info=True)
