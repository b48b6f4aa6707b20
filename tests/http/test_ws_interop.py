"""Interoperability with the third-party ``websockets`` library (asyncio only)."""

from __future__ import annotations

import anyio
import pytest
from http_helpers import serving
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from kitecore.http import HTTPRequest, HTTPServer, WebSocketConnection, connect_websocket

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_websockets_client_against_our_server() -> None:
    server = HTTPServer(max_message_size=2 << 20)

    async def echo(ws: WebSocketConnection, request: HTTPRequest) -> None:
        async for message in ws:
            await ws.send(message)

    server.add_websocket_route("/kite", echo)
    async with serving(server) as port:
        # The client offers permessage-deflate by default; we decline it.
        async with ws_connect(f"ws://127.0.0.1:{port}/kite", max_size=None) as client:
            assert client.response.headers.get("Sec-WebSocket-Extensions") is None
            for text in ("hi", "x" * 70_000, "é" * 1_000_000):
                await client.send(text)
                assert await client.recv() == text
            await client.send(["frag", "mented"])  # fragmented message
            assert await client.recv() == "fragmented"
            await client.send(b"binary utf-8")
            assert await client.recv() == "binary utf-8"
            pong = await client.ping(b"p")
            with anyio.fail_after(5):
                await pong
            await client.send("x" * ((2 << 20) + 1))
            with pytest.raises(ConnectionClosed) as info:
                await client.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_our_client_against_websockets_server() -> None:
    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            if message == "close please":
                await connection.close(4002, "as asked")
                return
            await connection.send(message)

    async with ws_serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/")
        for text in ("hi", "y" * 200_000):
            await ws.send(text)
            assert await ws.receive() == text
        await ws.send_many(["1", "2"])
        assert [await ws.receive(), await ws.receive()] == ["1", "2"]
        await ws.send("close please")
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await ws.receive()
        assert (ws.close_code, ws.close_reason) == (4002, "as asked")

        ws = await connect_websocket(f"ws://127.0.0.1:{port}/")
        await ws.aclose(1000, "done")
        assert ws.close_code == 1000
