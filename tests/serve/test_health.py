"""``GET /kite/health`` over real HTTP: the kite's state, 200 while serving."""

from __future__ import annotations

import anyio
import pytest
from serve_helpers import http_get

from kitecore import Kite

pytestmark = pytest.mark.anyio


async def test_health_reports_the_kite(make_kite, kite_config, kite_plugins):
    kite = await make_kite("shop", "2.1.0")
    port = kite.port
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        status, body = await http_get(stream, "/kite/health")
        assert status == 200
        assert body["status"] == "ok"
        assert (body["name"], body["version"], body["id"]) == ("shop", "2.1.0", kite.id)
        assert body["uptime"] >= 0
        assert body["connections"] == 0
        assert body["registered"] is False

        caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
        async with caller.new_client(kite.url) as client:
            assert await client.tell("kite.ping") == "pong"
            status, body = await http_get(stream, "/kite/health")  # same keep-alive connection
            assert status == 200
            assert body["connections"] == 1


async def test_health_only_answers_get_and_head(make_kite):
    kite = await make_kite()
    async with await anyio.connect_tcp("127.0.0.1", kite.port) as stream:
        await stream.send(b"POST /kite/health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive()
        assert head.startswith(b"HTTP/1.1 405")
