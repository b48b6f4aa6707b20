"""A kite served by uvicorn and hypercorn through ``Kite.asgi_app()``: a Python client calls
it over the raw WebSocket transport, health answers, lifespan starts and stops the kite."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from asgi_servers import serve_asgi

from kitecore import Kite
from kitecore.config import Config
from kitecore.plugins import PluginRegistry
from kitecore.testing import square

pytestmark = pytest.mark.anyio


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        request = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        await stream.send(request.encode())
        data = b""
        with anyio.fail_after(10):
            while True:
                try:
                    data += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(": ", 1) for line in lines[1:] if ": " in line]
    headers = {name.lower(): value for name, value in pairs}
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return int(lines[0].split()[1]), headers, body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def make_math_kite(config: Config, plugins: PluginRegistry) -> Kite:
    kite = Kite("math", "1.0.0", config=config, plugins=plugins)
    kite.handle("square", square)
    return kite


async def test_python_client_calls_kite_under_asgi_server(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        for url in (f"ws://127.0.0.1:{port}/kite", f"http://127.0.0.1:{port}/kite/websocket"):
            async with caller.new_client(url) as client:
                assert await client.tell("square", 7) == 49
                assert await client.tell("kite.ping") == "pong"
                # many calls in flight at once on one connection
                results: dict[int, Any] = {}

                async def one(n: int, into: dict[int, Any]) -> None:
                    into[n] = await client.tell("square", n)

                async with anyio.create_task_group() as group:
                    for n in range(100):
                        group.start_soon(one, n, results)
                assert results == {n: n * n for n in range(100)}
                status, _, body = await http_get(port, "/kite/health")
                assert status == 200
                health = json.loads(body)
                assert (health["name"], health["status"], health["connections"]) == (
                    "math",
                    "ok",
                    1,
                )
        assert kite.ready is not None and kite.ready.is_set()
    # lifespan shutdown ran Kite.shutdown()
    assert kite.shutting_down


async def test_behind_a_proxy_that_strips_a_root_path(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    """``--root-path /api``: the proxy passes ``/kite`` on, the server reports ``/api/kite``."""
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server, root_path="/api") as port:
        async with caller.new_client(f"ws://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 4) == 16
        status, _, _ = await http_get(port, "/kite/health")
        assert status == 200


async def test_serves_without_lifespan(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    """A server run with lifespan off still serves calls (nothing registers, nothing stops)."""
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server, lifespan=False) as port:
        async with caller.new_client(f"ws://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 8) == 64
    assert kite.ready is None


async def test_an_idle_connection_is_closed_under_an_asgi_server(
    asgi_server: str, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    """The idle sweeper starts with the lifespan too: a connection with no message and no call
    in flight for ``idle_timeout`` gets 1001 "idle timeout", as on the built-in server."""
    config = kite_config.copy()
    config.idle_timeout = 0.4
    kite = make_math_kite(config, kite_plugins)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(kite.asgi_app(), asgi_server) as port:
        async with caller.new_client(f"ws://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 3) == 9
            connection = client.connection
            assert connection is not None
            with anyio.fail_after(10):
                await connection.wait_closed()
            assert (connection.stream.close_code, connection.stream.close_reason) == (
                1001,
                "idle timeout",
            )
