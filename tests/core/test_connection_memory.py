"""A connection that ends is freed at once, by reference counting: no reference cycle keeps it
for the cycle collector (after a crowd of 10,000 peers left, a kite held all their
connections until a full collection, which took half a second)."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest
from raw_peer import CALL_SQUARE, answer_of

from kitecore import Client, Config, Kite
from kitecore.http import connect_websocket
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("calls", [0, 1])
async def test_a_closed_connection_is_freed_without_the_cycle_collector(
    no_cycle_collector: None, calls: int
) -> None:
    kite = Kite(
        "freed",
        "1.0.0",
        config=Config(ip="127.0.0.1", disable_authentication=True),
        plugins=load_plugins(names=["websocket"]),
    )
    kite.handle("square", lambda r: r.args.one() ** 2)
    connections: list[weakref.ref[object]] = []
    gone = anyio.Event()

    @kite.on_connect
    def remember(client: Client) -> None:
        connections.append(weakref.ref(client.connection))

    @kite.on_disconnect
    def left(client: Client) -> None:
        gone.set()

    async with kite:
        ws = await connect_websocket(kite.url)
        for _ in range(calls):
            await ws.send(CALL_SQUARE)
            assert (await answer_of(ws))["arguments"][0]["result"] == 9
        await ws.aclose()
        with anyio.fail_after(10):
            await gone.wait()
        for _ in range(10):  # let the connection's tasks finish
            await anyio.sleep(0.01)
        assert len(connections) == 1
        assert connections[0]() is None, gc.get_referrers(connections[0]())
