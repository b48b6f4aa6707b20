"""Bad input to a kite under uvicorn and hypercorn: each gets a clear answer, nothing hangs,
and the kite keeps serving others."""

from __future__ import annotations

import base64
import os
from typing import Any

import anyio
import anyio.abc
import pytest
from asgi_servers import serve_asgi
from test_asgi_websocket import http_get, make_math_kite

from kitecore import Kite
from kitecore.config import Config
from kitecore.http.client import connect_websocket
from kitecore.http.errors import HandshakeError
from kitecore.http.frames import encode_text
from kitecore.plugins import PluginRegistry

pytestmark = pytest.mark.anyio

CALL_SLOW = (
    '{"method":"slow","arguments":[{"withArgs":[],"responseCallback":"[Function]"}],'
    '"callbacks":{"1":[0,"responseCallback"]}}'
)


async def _upgrade(port: int) -> anyio.abc.SocketStream:
    """A TCP connection upgraded to WebSocket on ``/kite`` (frames are then written by hand)."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send(
        (
            "GET /kite HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    with anyio.fail_after(10):
        while b"\r\n\r\n" not in head:
            head += await stream.receive()
    assert head.startswith(b"HTTP/1.1 101")
    return stream


async def test_plain_http_request_to_the_websocket_endpoint(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        status, headers, body = await http_get(port, "/kite")
        assert status == 426
        assert headers["upgrade"] == "websocket"
        assert b"/kite is a WebSocket endpoint" in body
        status, _, body = await http_get(port, "/nowhere")
        assert (status, body) == (404, b"no route for /nowhere\n")
        status, headers, _ = await http_get(port, "/kite/health", method="POST")
        assert (status, headers["allow"]) == (405, "GET, HEAD")
        status, headers, body = await http_get(port, "/kite/health", method="HEAD")
        assert (status, headers["content-type"], body) == (200, "application/json", b"")
        with pytest.raises(HandshakeError) as refused:
            await connect_websocket(f"ws://127.0.0.1:{port}/nowhere")
        assert refused.value.status_code == 404
        assert b"no WebSocket route for /nowhere" in refused.value.body


async def test_oversized_message_closes_with_1009(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    config = kite_config.copy()
    config.max_message_size = 1000
    kite = make_math_kite(config, kite_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/kite")
        await ws.send("x" * 2000)
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await ws.receive()
        assert ws.close_code == 1009
        await ws.aclose()
        async with caller.new_client(f"ws://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 3) == 9


async def test_client_vanishing_mid_call(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    started, gone = anyio.Event(), anyio.Event()

    @kite.handle("slow")
    async def slow(r: object) -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    @kite.on_disconnect
    def disconnected(client: object) -> None:
        gone.set()

    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        stream = await _upgrade(port)
        await stream.send(encode_text(CALL_SLOW, mask=True))
        with anyio.fail_after(10):
            await started.wait()
        await stream.aclose()  # gone without a close frame, the call still running
        with anyio.fail_after(10):
            await gone.wait()
        async with caller.new_client(f"ws://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 5) == 25


async def test_peer_that_does_not_read_is_closed_at_the_outbound_limit(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    config = kite_config.copy()
    config.max_outbound_bytes = 1 << 20
    kite = make_math_kite(config, kite_plugins)
    gone = anyio.Event()
    sent: list[int] = []

    @kite.handle("flood")
    async def flood(r: Any) -> None:
        callback = r.args.function(0)
        for _ in range(4000):  # 80 MB: more than any socket buffers hold
            await callback("z" * 20_000)
            sent.append(1)

    kite.on_disconnect(lambda client: gone.set())
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        stream = await _upgrade(port)
        call = (
            '{"method":"flood","arguments":[{"withArgs":["[Function]"],'
            '"responseCallback":"[Function]"}],'
            '"callbacks":{"1":[0,"responseCallback"],"2":[0,"withArgs",0]}}'
        )
        await stream.send(encode_text(call, mask=True))
        with anyio.fail_after(30):  # never reading, the peer is dropped
            await gone.wait()
        await stream.aclose()
    assert len(sent) < 4000
