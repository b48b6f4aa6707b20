"""Coalescing SockJS writes: answers to messages that arrived together leave together.

Every SockJS websocket frame may carry several messages (``a[...]`` from the server, a JSON
array from the client), so answers written back to back can share one frame and one ``send``
system call, which is most of the per-message cost under load. On a websocket with the
:class:`~kitecore.transport.CoalescingWrite` ability (the core's asyncio driver) the writer
holds a message back only while more received messages wait to be taken (``waiting``: the
rest of the client frame being handled, and the client frames read in this loop pass and not
yet received); the answer to the last of them writes the frame, or at the latest a
``call_soon`` callback at the end of the loop pass does. A message written when nothing else
waits goes out at once, so a lone call costs no extra loop pass. Any other websocket (the
portable driver, on trio) is written at once, one frame per write.

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
    """Writes messages to ``ws`` as frames made by ``encode`` (a list of messages -> text);
    ``waiting()`` is how many received messages still wait to be taken."""

    __slots__ = ("_coalescing", "_encode", "_flush_scheduled", "_pending", "_waiting", "ws")

    def __init__(
        self,
        ws: WebSocketConnection,
        encode: Callable[[list[str]], str],
        waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        self.ws = ws
        self._encode = encode
        self._waiting = waiting
        self._pending: list[str] = []
        self._flush_scheduled = False
        self._coalescing: CoalescingWrite | None = coalescing_write(ws)

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` without waiting (see ``write_nowait`` of the websocket).

        On asyncio they are held back while more received messages wait (for the frame their
        answers share), else written at once with whatever is held; True is returned. A closed
        websocket raises as a direct write would.
        """
        coalescing = self._coalescing
        if coalescing is None:
            return self.ws.write_nowait([self._encode(items)])
        if self.ws.closed:
            raise anyio.BrokenResourceError("websocket is closed")
        if self._waiting():
            self._pending.extend(items)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                coalescing.call_soon(self._write_pending)
            return True
        if self._pending:
            self._pending.extend(items)
            self._write_pending()
            return True
        coalescing.write_buffered([self._encode(items)])
        return True

    def _write_pending(self) -> None:
        """Send what is held back as one frame (at once, or as the ``call_soon`` callback)."""
        self._flush_scheduled = False
        items = self._pending
        if not items:
            return
        self._pending = []
        frame = self._encode(items)
        coalescing = self._coalescing
        assert coalescing is not None  # only then is anything held
        try:
            # the transport takes it even over its high-water mark (it buffers), and
            # senders using send() wait for it to drain
            coalescing.write_buffered([frame])
        except _GONE as exc:
            logger.debug("SockJS websocket gone; %d message(s) not sent: %s", len(items), exc)

    def flush_pending(self) -> None:
        """Write what is held back now (before anything sent another way, to keep the order)."""
        if self._pending:
            self._write_pending()
