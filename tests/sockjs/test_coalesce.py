"""Answers to messages that arrived together share one SockJS frame (asyncio), in order; a
lone answer goes out at once."""

from __future__ import annotations

import anyio
import pytest
from kite_transport_sockjs.coalesce import FrameWriter
from kite_transport_sockjs.frames import message_frame

from kitecore.http import HTTPServer, connect_websocket

pytestmark = pytest.mark.anyio


async def frames_seen_by_client(write) -> list[str]:
    """Serve one websocket whose handler calls ``write(ws)``; return the frames received."""
    server = HTTPServer()
    done = anyio.Event()

    async def handler(ws, request):
        await write(ws)
        await done.wait()

    server.add_websocket_route("/ws", handler)
    frames: list[str] = []
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        with anyio.move_on_after(0.5):
            while True:
                frames.append(await ws.receive())
        done.set()
        await ws.aclose()
        tg.cancel_scope.cancel()
    return frames


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_answers_to_messages_taken_together_share_a_frame_and_keep_their_order(
    anyio_backend,
):
    waiting = [0]  # how many received messages still wait to be taken (the channel's deque)

    async def write(ws):
        writer = FrameWriter(ws, message_frame, lambda: waiting[0])
        waiting[0] = 2
        assert writer.write_nowait(["1"])  # two more wait: held
        waiting[0] = 1
        assert writer.write_nowait(["2", "3"])  # held
        waiting[0] = 0
        assert writer.write_nowait(["4"])  # the last answer takes the frame along
        assert writer.write_nowait(["5"])  # nothing waits, nothing held: at once
        waiting[0] = 1
        assert writer.write_nowait(["6"])  # held, and nothing more comes in this pass:
        await anyio.sleep(0.05)  # the end-of-pass callback writes it
        waiting[0] = 1
        assert writer.write_nowait(["7"])
        writer.flush_pending()  # what another send path does first, to keep the order
        waiting[0] = 0
        assert writer.write_nowait(["8"])
        await ws.flush()  # (the portable driver writes what write_nowait queued here)

    frames = await frames_seen_by_client(write)
    if anyio_backend == "asyncio":
        assert frames == ['a["1","2","3","4"]', 'a["5"]', 'a["6"]', 'a["7"]', 'a["8"]']
    else:  # no loop callbacks on trio: every write is a frame of its own
        assert frames == [
            'a["1"]',
            'a["2","3"]',
            'a["4"]',
            'a["5"]',
            'a["6"]',
            'a["7"]',
            'a["8"]',
        ]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_lone_answer_costs_no_loop_pass(anyio_backend):
    """With nothing waiting, the frame is written before write_nowait returns: no
    ``call_soon`` (one more event-loop pass per call, which a sequential caller pays)."""
    scheduled: list[object] = []
    written: list[list[str]] = []

    async def write(ws):
        real_call_soon, real_write_buffered = ws.call_soon, ws.write_buffered

        def call_soon(callback):
            scheduled.append(callback)
            real_call_soon(callback)

        def write_buffered(items):
            written.append(items)
            real_write_buffered(items)

        ws.call_soon, ws.write_buffered = call_soon, write_buffered
        writer = FrameWriter(ws, message_frame)
        assert writer.write_nowait(["x"])
        assert written == [['a["x"]']] and scheduled == []
        waiting = FrameWriter(ws, message_frame, lambda: 1)
        assert waiting.write_nowait(["y"])
        assert len(scheduled) == 1 and len(written) == 1  # held until the end of the pass

    assert await frames_seen_by_client(write) == ['a["x"]', 'a["y"]']
