"""What plugins mount on a kite: ``Kite.server``, ``handle_websocket`` and ``serve_stream``."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from kitecore import Kite
from kitecore.http import HTTPRequest, WebSocketConnection, connect_websocket
from kitecore.protocol.envelope import Authentication
from kitecore.testing import MakeKite
from kitecore.transport import PeerInfo

pytestmark = pytest.mark.anyio


async def test_server_is_there_while_the_kite_serves(kite_config: Any, kite_plugins: Any) -> None:
    kite = Kite("k", "1.0.0", config=kite_config, plugins=kite_plugins)
    assert kite.server is None
    async with kite:
        assert kite.server is not None and kite.server.port == kite.port


async def test_handle_websocket_serves_upgrades_beside_the_kite(make_kite: MakeKite) -> None:
    async def echo(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await ws.send(request.path + " " + await ws.receive())

    kite = await make_kite()
    kite.handle_websocket(re.compile(r"/echo/.+"), echo)  # added while serving: live at once
    ws = await connect_websocket(f"ws://127.0.0.1:{kite.port}/echo/x")
    try:
        await ws.send("hi")
        with anyio.fail_after(5):
            assert await ws.receive() == "/echo/x hi"
    finally:
        await ws.aclose()


async def test_serve_stream_serves_like_an_accepted_connection(
    make_kite: MakeKite, kite_config: Any, kite_plugins: Any
) -> None:
    """A stream the kite did not accept (a tunnel it dialed) is still authenticated."""
    config = kite_config.copy()
    config.disable_authentication = False
    server = Kite("server", "1.0.0", config=config, plugins=kite_plugins)  # listens nowhere
    server.handle("square", lambda r: r.args.one(float) ** 2)
    relay = await make_kite("relay")
    accepted: list[Any] = []

    async def hand_over(ws: WebSocketConnection, request: HTTPRequest) -> None:
        accepted.append(ws)
        await server.serve_stream(ws, PeerInfo("test", request.remote_address))

    relay.handle_websocket("/in", hand_over)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(f"ws://127.0.0.1:{relay.port}/in") as client:
        with pytest.raises(Exception, match="authentication"):
            await client.tell("square", 3)
        client.auth = Authentication("kiteKey", "not-a-key")
        with pytest.raises(Exception, match=r"Unknown authentication type|kiteKey"):
            await client.tell("square", 3)
        server.config.disable_authentication = True
        assert await client.tell("square", 3) == 9  # the stream is served, calls and all
    assert accepted
