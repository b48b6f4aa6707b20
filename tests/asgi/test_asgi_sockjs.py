"""A kite with the SockJS plugin under uvicorn and hypercorn: the Python client over SockJS
(websocket, xhr-polling, xhr-streaming) and the real kite.js 1.0.13 (SockJS websocket and
xhr-polling, raw websocket) call it. Needs the plugin: listed in hatch.toml's core ignores."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from asgi_servers import serve_asgi
from kitejs_peer import make_kitejs_peer
from node_packages import node_environment
from test_asgi_websocket import http_get

from kitecore import Kite
from kitecore.config import Config
from kitecore.plugins import PluginRegistry, load_plugins

pytestmark = pytest.mark.anyio

KITEJS_CLIENT = Path(__file__).resolve().parents[1] / "interop" / "kitejs_client.js"


@pytest.fixture
def sockjs_plugins() -> PluginRegistry:
    return load_plugins(names=("websocket", "sockjs"))


@pytest.mark.parametrize("transport", ["sockjs", "WebSocket", "XHRPolling", "XHRStreaming"])
async def test_python_client_over_sockjs(
    asgi_server: str, kite_config: Config, sockjs_plugins: PluginRegistry, transport: str
) -> None:
    kite = make_kitejs_peer(kite_config.copy(), sockjs_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=sockjs_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        status, _, body = await http_get(port, "/kite/info")
        assert status == 200
        assert json.loads(body)["websocket"] is True
        url = f"http://127.0.0.1:{port}/kite"
        assert caller.transport_for(url).name == "sockjs"
        seen: list[int] = []
        with anyio.fail_after(60):
            async with caller.new_client(url, transport=transport) as client:
                assert await client.tell("square", 7) == 49
                assert await client.tell("countdown", 3, seen.append) == "done"
                assert seen == [3, 2, 1]
                assert await client.tell("length", "y" * (1 << 18)) == 1 << 18
                results = [0.0] * 50

                async def call(i: int, into: list[float]) -> None:
                    into[i] = await client.tell("square", i)

                async with anyio.create_task_group() as tg:
                    for i in range(50):
                        tg.start_soon(call, i, results)
                assert results == [i * i for i in range(50)]


@pytest.mark.parametrize("mode", ["sockjs-websocket", "sockjs-xhr-polling", "websocket"])
async def test_kitejs_calls_kite_under_asgi_server(
    asgi_server: str, kite_config: Config, sockjs_plugins: PluginRegistry, mode: str
) -> None:
    env = node_environment()
    kite = make_kitejs_peer(kite_config.copy(), sockjs_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        scheme = "ws" if mode == "websocket" else "http"
        url = f"{scheme}://127.0.0.1:{port}/kite"
        with anyio.fail_after(90):
            done = await anyio.run_process(
                ["node", str(KITEJS_CLIENT), url, mode], env=env, check=False
            )
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0, (done.stdout, done.stderr.decode()[-2000:])
    results = json.loads(lines[-1])
    assert results["ping"] == {"result": "pong"}
    assert results["square"] == {"result": 16}
    assert results["countdown"] == {"result": "done"}
    assert results["seen"] == [5, 4, 3, 2, 1]
    assert results["missing"]["error"]["type"] == "methodNotFound"
    assert results["failing"]["error"] == {"type": "genericError", "message": "boom"}
    assert results["concurrentOk"] is True
    assert results["bigLength"] == {"result": 1 << 20}


async def test_xhr_streaming_is_streamed_and_a_gone_client_noticed(
    asgi_server: str, kite_config: Config, sockjs_plugins: PluginRegistry
) -> None:
    kite = make_kitejs_peer(kite_config.copy(), sockjs_plugins)
    opened, gone = anyio.Event(), anyio.Event()
    kite.on_connect(lambda client: opened.set())
    kite.on_disconnect(lambda client: gone.set())
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(
            b"POST /kite/000/streamer/xhr_streaming HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        data = b""
        with anyio.fail_after(10):
            # the open frame arrives while the response is still open: streamed, not buffered
            while b"o\n" not in data.partition(b"\r\n\r\n")[2]:
                data += await stream.receive()
            await opened.wait()
        assert data.startswith(b"HTTP/1.1 200")
        await stream.aclose()  # the client goes away mid-stream
        # noticed at once: without it the session would end only after SockJS's 10 s
        # disconnect delay
        with anyio.fail_after(5):
            await gone.wait()
