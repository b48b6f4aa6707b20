"""Messages written in one event-loop pass share one SockJS frame (asyncio), in order."""

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
async def test_writes_of_one_pass_share_a_frame_and_keep_their_order(anyio_backend):
    async def write(ws):
        writer = FrameWriter(ws, message_frame)
        assert writer.write_nowait(["1"])
        assert writer.write_nowait(["2", "3"])
        writer.flush_pending()  # what another send path does first, to keep the order
        assert writer.write_nowait(["4"])
        await anyio.sleep(0.05)
        assert writer.write_nowait(["5"])
        await ws.flush()  # (the portable driver writes what write_nowait queued here)

    frames = await frames_seen_by_client(write)
    if anyio_backend == "asyncio":
        assert frames == ['a["1","2","3"]', 'a["4"]', 'a["5"]']
    else:  # no loop callbacks on trio: every write is a frame of its own
        assert frames == ['a["1"]', 'a["2","3"]', 'a["4"]', 'a["5"]']
