"""A WebSocket that ends is freed at once, by reference counting, on both drivers: once its
transport is gone, no reference cycle and no pending timer keeps the driver object, its sans-IO
core or its buffers for the cycle collector (a crowd of closed connections then waits for the
server's next full collection, and their memory stays fragmented meanwhile)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from http_helpers import EVERY_LOOP, loop_backend, raw_websocket, serving

from kitecore.http import HTTPRequest, HTTPServer, WebSocketConnection, connect_websocket
from kitecore.http.frames import OP_TEXT

pytestmark = pytest.mark.anyio

#: asyncio, uvloop and trio: the drivers differ per loop
anyio_backend = pytest.fixture(params=EVERY_LOOP, name="anyio_backend")(loop_backend)


class Recorder:
    """A server whose WebSocket handler keeps weak references to what it served: it echoes,
    and on ``/bye`` closes after the first message."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []
        self.ended = anyio.Event()
        self.server = HTTPServer(close_timeout=0.5)
        self.server.add_websocket_route("/ws", self.handle)
        self.server.add_websocket_route("/bye", self.handle)

    async def handle(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        self.refs.append(weakref.ref(ws))
        try:
            async for message in ws:
                await ws.send(message)
                if request.path == "/bye":
                    await ws.aclose()
        finally:
            self.ended.set()

    async def settled(self) -> None:
        """Wait until the handler ended and the connection's tasks are done."""
        with anyio.fail_after(10):
            await self.ended.wait()
        for _ in range(20):
            await anyio.sleep(0.01)


def _alive(refs: list[weakref.ref[Any]]) -> list[Any]:
    return [obj for ref in refs if (obj := ref()) is not None]


@pytest.mark.parametrize("how", ["client closes", "server closes", "peer vanishes"])
async def test_an_ended_websocket_is_freed_without_the_cycle_collector(
    no_cycle_collector: None, how: str
) -> None:
    recorder = Recorder()
    client_refs: list[weakref.ref[Any]] = []
    async with serving(recorder.server) as port:
        if how == "peer vanishes":  # no close frame: the TCP connection just ends
            raw = await raw_websocket(port)
            await raw.send_frame(OP_TEXT, b"hi")
            assert await raw.next_event() == "hi"
            await raw.stream.aclose()
            del raw
        else:
            path = "/bye" if how == "server closes" else "/ws"
            ws = await connect_websocket(f"ws://127.0.0.1:{port}{path}")
            client_refs.append(weakref.ref(ws))
            await ws.send("hi")
            assert await ws.receive() == "hi"
            if how == "server closes":
                with pytest.raises(anyio.EndOfStream):
                    await ws.receive()
            await ws.aclose()
            del ws
        await recorder.settled()
        assert len(recorder.refs) == 1
        alive = _alive(recorder.refs + client_refs)
        assert not alive, [(obj, gc.get_referrers(obj)) for obj in alive]


async def test_a_websocket_closed_for_overflow_is_freed_once_its_peer_is_gone(
    no_cycle_collector: None,
) -> None:
    """Closing over ``max_outbound_bytes`` arms an abort for the close timeout (here longer
    than the test): once the transport is lost anyway, that timer must not keep the
    connection."""
    refs: list[weakref.ref[Any]] = []
    overflowed = anyio.Event()
    ended = anyio.Event()

    async def flood(ws: WebSocketConnection, request: HTTPRequest) -> None:
        refs.append(weakref.ref(ws))
        try:
            with pytest.raises(anyio.BrokenResourceError):
                while True:
                    ws.write_nowait(["x" * 65536])
                    await checkpoint()
        finally:
            overflowed.set()
            await ws.aclose()
            ended.set()

    server = HTTPServer(close_timeout=20, max_outbound_bytes=256 * 1024)
    server.add_websocket_route("/ws", flood)
    async with serving(server) as port:
        raw = await raw_websocket(port)  # reads nothing
        with anyio.fail_after(10):
            await overflowed.wait()
        await raw.stream.aclose()
        del raw
        with anyio.fail_after(10):
            await ended.wait()
        for _ in range(20):
            await anyio.sleep(0.01)
        assert len(refs) == 1
        alive = _alive(refs)
        assert not alive, [(obj, gc.get_referrers(obj)) for obj in alive]
