"""Server-side message streams handed to the kite: one per SockJS session.

* :class:`SessionChannel` sits on a sans-IO :class:`~kite_transport_sockjs.session.Session`
  served over HTTP (xhr, xhr_streaming, eventsource, htmlfile, jsonp). The HTTP handlers feed it
  what clients send and take what the kite sends from the session's queue.
* :class:`WebSocketChannel` frames messages straight onto one SockJS websocket: ``o`` first,
  ``a[...]`` per write, ``h`` when idle, ``c[...]`` on close.

Both are ``anyio.abc.ObjectStream[str]`` of whole message texts and offer ``write_nowait``
(see :class:`kitecore.connection.Connection`), so sending never needs a task switch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import ObjectStream

from kitecore.http.websocket import WebSocketConnection

from .coalesce import FrameWriter
from .errors import PayloadError
from .frames import HEARTBEAT_FRAME, close_frame, message_frame
from .payload import decode_websocket_message
from .session import Session, SessionState

__all__ = ["SessionChannel", "WebSocketChannel"]

logger = logging.getLogger(__name__)

#: What ``aclose()`` sends by default, as Kite's Go servers do.
GO_AWAY = (3000, "Go away!")


class _Inbox:
    """Received messages waiting for :meth:`receive`; one reader at a time."""

    __slots__ = ("_messages", "_waiter", "closed", "ended")

    def __init__(self) -> None:
        self._messages: deque[str] = deque()
        self._waiter: anyio.Event | None = None
        self.ended = False  # the remote end is gone
        self.closed = False  # aclose() was called

    def put(self, messages: list[str]) -> None:
        self._messages.extend(messages)
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()

    async def get(self) -> str:
        while True:
            if self.closed:
                raise anyio.ClosedResourceError
            if self._messages:
                return self._messages.popleft()
            if self.ended:
                raise anyio.EndOfStream
            self._waiter = anyio.Event()
            try:
                await self._waiter.wait()
            finally:
                self._waiter = None

    def clear(self) -> None:
        self._messages.clear()


class SessionChannel(ObjectStream[str]):
    """The kite's side of an HTTP-served SockJS session.

    ``notify`` is called whenever the session has something new for its receiver (messages or
    the close frame). :meth:`deliver` and :meth:`end` are for the HTTP layer.
    """

    def __init__(self, session: Session, notify: Callable[[], None]) -> None:
        self.session = session
        self._notify = notify
        self._inbox = _Inbox()

    # -- HTTP layer ---------------------------------------------------------------------------

    def deliver(self, messages: list[str]) -> None:
        """Messages a client sent (``xhr_send``, ``jsonp_send``)."""
        if messages and not self._inbox.closed:
            self._inbox.put(messages)

    def end(self) -> None:
        """The session is over (expired, interrupted): :meth:`receive` ends once drained."""
        self._inbox.ended = True
        self._inbox.wake()

    # -- ObjectStream -------------------------------------------------------------------------

    async def receive(self) -> str:
        """The next message from the client."""
        return await self._inbox.get()

    def write_nowait(self, items: list[str]) -> bool:
        """Queue ``items`` for the client now; always succeeds on a live session."""
        session = self.session
        if self._inbox.closed:
            raise anyio.ClosedResourceError
        if session.state not in (SessionState.CONNECTING, SessionState.OPEN):
            raise anyio.BrokenResourceError("the SockJS session is closed")
        session.send(*items)
        self._notify()
        return True

    #: Nothing is ever left unwritten by :meth:`write_nowait`.
    pending_bytes = 0

    async def send(self, item: str) -> None:
        """Queue one message for the client."""
        self.write_nowait([item])

    async def send_many(self, items: list[str]) -> None:
        """Queue several messages; they leave together in one ``a[...]`` frame."""
        self.write_nowait(items)

    async def flush(self) -> None:
        """Nothing to do: writes never stay pending."""

    async def send_eof(self) -> None:
        """SockJS has no half-close: close the session."""
        await self.aclose()

    async def aclose(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> None:
        """Close the session with ``c[code,"reason"]`` (``3000 "Go away!"`` by default)."""
        if self._inbox.closed:
            return
        self._inbox.closed = True
        self._inbox.clear()
        self._inbox.wake()
        if self.session.close(code, reason):
            self._notify()


class WebSocketChannel(ObjectStream[str]):
    """The kite's side of a SockJS session over one websocket (``.../websocket``)."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._messages: deque[str] = deque()
        self._writer = FrameWriter(ws, message_frame, self._waiting)
        self._closed = False
        #: set on every write; the heartbeat task sends ``h`` only after a quiet period
        self.wrote = True

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The websocket's attributes (remote address, socket)."""
        return self.ws.extra_attributes

    def _waiting(self) -> int:
        """Messages received and not taken yet: the rest of the SockJS frame being handled,
        and the websocket frames read in this loop pass and not yet received."""
        return len(self._messages) + len(self.ws.core.messages)

    async def open(self) -> None:
        """Send the ``o`` frame."""
        await self.ws.send("o")

    async def heartbeat(self, delay: float) -> None:
        """Send ``h`` whenever nothing was written for ``delay`` seconds; runs until cancelled
        or the websocket is gone."""
        while not self.ws.closed:
            await anyio.sleep(delay)
            if not self.wrote:
                try:
                    self._writer.flush_pending()
                    await self.ws.send(HEARTBEAT_FRAME)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return
            self.wrote = False

    async def receive(self) -> str:
        """The next message; a frame that is not a JSON array of strings drops the websocket."""
        while not self._messages:
            if self._closed:
                raise anyio.ClosedResourceError
            text = await self.ws.receive()
            try:
                self._messages.extend(decode_websocket_message(text))
            except PayloadError:
                logger.debug("broken SockJS websocket frame %r; closing", text[:64])
                await self.ws.aclose(3000, "Broken framing.")
                raise anyio.EndOfStream from None
        return self._messages.popleft()

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` without waiting, if the socket allows; on asyncio, answers to the
        messages of one received frame share one ``a[...]`` frame (see :mod:`.coalesce`)."""
        if self._closed:
            raise anyio.ClosedResourceError
        self.wrote = True
        return self._writer.write_nowait(items)

    @property
    def pending_bytes(self) -> int:
        """Bytes a direct write left for :meth:`flush`."""
        return self.ws.pending_bytes

    async def flush(self) -> None:
        """Write what :meth:`write_nowait` could not."""
        self._writer.flush_pending()
        await self.ws.flush()

    async def send(self, item: str) -> None:
        """Send one message (an ``a[...]`` frame)."""
        await self.send_many([item])

    async def send_many(self, items: list[str]) -> None:
        """Send several messages in one ``a[...]`` frame."""
        if self._closed:
            raise anyio.ClosedResourceError
        self.wrote = True
        self._writer.flush_pending()
        await self.ws.send(message_frame(items))

    async def send_eof(self) -> None:
        """SockJS has no half-close: close the session."""
        await self.aclose()

    async def aclose(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> None:
        """Send ``c[code,"reason"]`` and close the websocket."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if not self.ws.closed:
                try:
                    self._writer.flush_pending()
                    await self.ws.send(close_frame(code, reason))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
            await self.ws.aclose(1000)
