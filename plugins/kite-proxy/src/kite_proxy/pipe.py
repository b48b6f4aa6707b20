"""Forward whole messages between two streams, both ways, with bounded buffering."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import ObjectStream

from kitecore.transport import direct_write, outbound_count

__all__ = ["MAX_QUEUED_MESSAGES", "pipe"]

logger = logging.getLogger(__name__)

#: A destination that queues without blocking (a SockJS session served over HTTP) may hold at
#: most this many undelivered messages; the pipe stops reading from the source until the
#: client takes them, and gives up after ``drain_timeout`` seconds.
MAX_QUEUED_MESSAGES = 256
_GONE = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


#: Bytes a websocket destination may hold for its peer before the copy waits for it to read.
_OUTBOUND_HIGH_WATER = 256 * 1024


def _queued(stream: Any) -> int:
    """Messages ``stream`` holds for its client (SockJS HTTP sessions), else 0."""
    session = getattr(stream, "session", None)
    return int(getattr(session, "pending", 0) or 0)


async def _forward(
    source: ObjectStream[str], dest: ObjectStream[str], drain_timeout: float
) -> None:
    # streams that can write without a task switch (websockets, SockJS channels) offer
    # write_nowait: False means "use send", pending_bytes what is left for flush()
    direct = direct_write(dest)
    counted = outbound_count(dest)
    count = 0
    while True:
        try:
            message = await source.receive()
        except _GONE:
            return
        count += 1
        if count % 64 == 0:  # a source with messages queued never yields by itself
            await anyio.lowlevel.checkpoint()
        if _queued(dest) >= MAX_QUEUED_MESSAGES:
            with anyio.move_on_after(drain_timeout):
                while _queued(dest) >= MAX_QUEUED_MESSAGES:  # noqa: ASYNC110 (no event to wait on)
                    await anyio.sleep(0.01)
            if _queued(dest) >= MAX_QUEUED_MESSAGES:
                logger.info("a client took nothing for %gs; closing its session", drain_timeout)
                return
        try:
            if direct is not None and direct.write_nowait([message]):
                # a websocket waits here while the peer does not read: what write_nowait left
                # for flush (pending_bytes), or what the transport holds (outbound_bytes)
                if direct.pending_bytes or (
                    counted is not None and counted.outbound_bytes > _OUTBOUND_HIGH_WATER
                ):
                    await direct.flush()
            else:
                await dest.send(message)
        except _GONE:
            return


async def pipe(a: ObjectStream[str], b: ObjectStream[str], *, drain_timeout: float = 30.0) -> None:
    """Copy messages ``a`` → ``b`` and ``b`` → ``a`` until either side ends, then close both.

    Memory stays bounded: a websocket destination makes the copy wait for the peer to read,
    and a queueing destination is held to :data:`MAX_QUEUED_MESSAGES`.
    """
    try:
        async with anyio.create_task_group() as group:

            async def one_way(source: ObjectStream[str], dest: ObjectStream[str]) -> None:
                try:
                    await _forward(source, dest, drain_timeout)
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(one_way, a, b)
            group.start_soon(one_way, b, a)
    finally:
        with anyio.CancelScope(shield=True):
            for stream in (a, b):
                with anyio.move_on_after(2):
                    try:
                        await stream.aclose()
                    except Exception:  # already gone
                        pass
