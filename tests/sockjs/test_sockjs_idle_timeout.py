"""The idle timeout (``kitecore.idle``) closes SockJS sessions too: it works on dnode messages,
whatever carries them; an XHR poll or a SockJS heartbeat is not a message."""

from __future__ import annotations

import json
import urllib.request

import anyio
import pytest
from dial_helpers import SOCKJS_ONLY, serving

from kitecore import Config, Kite

pytestmark = pytest.mark.anyio


def xhr(url: str, body: bytes = b"") -> str:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.read().decode())


async def test_an_idle_xhr_session_is_closed_with_1001(kite_config: Config) -> None:
    config = kite_config.copy()
    config.idle_timeout = 0.3
    async with serving(config, SOCKJS_ONLY) as kite:
        session = f"{kite.url}/000/idlesession"
        assert await anyio.to_thread.run_sync(xhr, f"{session}/xhr") == "o\n"
        frames: list[str] = []
        with anyio.fail_after(20):
            while not frames or not frames[-1].startswith("c"):  # polls are not messages
                frames.append(await anyio.to_thread.run_sync(xhr, f"{session}/xhr"))
        assert json.loads(frames[-1][1:]) == [1001, "idle timeout"]
        assert kite._connections() == []


async def test_a_sockjs_session_making_calls_stays(kite_config: Config) -> None:
    config = kite_config.copy()
    config.idle_timeout = 0.6  # four times the gap between calls: room for a machine's pauses
    async with serving(config, SOCKJS_ONLY) as kite:
        caller_config = kite_config.copy()
        caller_config.transport = "sockjs"
        caller = Kite("caller", "1.0.0", config=caller_config, plugins=kite.plugins)
        async with caller.new_client(kite.url) as client:
            connection = client.connection
            for n in range(12):  # three idle timeouts, a call every 0.15 s
                assert await client.tell("square", n) == n * n
                await anyio.sleep(0.15)
            assert client.connection is connection and connection is not None
            assert not connection.closed
            with anyio.fail_after(20):  # and once it stops calling, it is closed
                await connection.wait_closed()
