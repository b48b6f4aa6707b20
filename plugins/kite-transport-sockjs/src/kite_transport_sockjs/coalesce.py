"""Coalescing SockJS writes: messages written in one event-loop pass leave as one frame.

Every SockJS websocket frame may carry several messages (``a[...]`` from the server, a JSON
array from the client), so messages written back to back can share one frame and one
``send`` system call, which is most of the per-message cost under load. On a websocket with
the :class:`~kitecore.transport.CoalescingWrite` ability (the core's asyncio driver) a write
is queued and the frame goes out from a ``call_soon`` callback, after every task ready in the
same loop pass has added its messages: no task switch and no timer, just one loop pass of
latency. Any other websocket (the portable driver, on trio) is written at once, one frame per
write.

Used by the server channel only: when both ends coalesce, request and reply batches alternate
in lock step and the two processes stop overlapping, which measured slower than either end
alone (``bench/sockjs.py``, 64 calls in flight).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from kitecore.http.websocket import WebSocketConnection
from kitecore.transport import CoalescingWrite, coalescing_write

__all__ = ["FrameWriter"]

logger = logging.getLogger(__name__)

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class FrameWriter:
    """Writes messages to ``ws`` as frames made by ``encode`` (a list of messages -> text)."""

    __slots__ = ("_coalescing", "_encode", "_pending", "ws")

    def __init__(self, ws: WebSocketConnection, encode: Callable[[list[str]], str]) -> None:
        self.ws = ws
        self._encode = encode
        self._pending: list[str] = []
        self._coalescing: CoalescingWrite | None = coalescing_write(ws)

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` without waiting (see ``write_nowait`` of the websocket).

        On asyncio they are queued for the frame sent at the end of this loop pass and True is
        returned; a closed websocket raises as a direct write would.
        """
        coalescing = self._coalescing
        if coalescing is None:
            return self.ws.write_nowait([self._encode(items)])
        if self.ws.closed:
            raise anyio.BrokenResourceError("websocket is closed")
        if not self._pending:
            coalescing.call_soon(self._write_pending)
        self._pending.extend(items)
        return True

    def _write_pending(self) -> None:
        """Send what is queued as one frame (the ``call_soon`` callback)."""
        items = self._pending
        if not items:
            return
        self._pending = []
        frame = self._encode(items)
        coalescing = self._coalescing
        assert coalescing is not None  # only then is anything queued
        try:
            # the transport takes it even over its high-water mark (it buffers), and
            # senders using send() wait for it to drain
            coalescing.write_buffered([frame])
        except _GONE as exc:
            logger.debug("SockJS websocket gone; %d message(s) not sent: %s", len(items), exc)

    def flush_pending(self) -> None:
        """Write what is queued now (before anything sent another way, to keep the order)."""
        if self._pending:
            self._write_pending()
