"""A connection that ends is freed at once, by reference counting: no reference cycle keeps it
for the cycle collector (after a crowd of 10,000 peers left, a kite held all their
connections until a full collection, which took half a second)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from raw_peer import CALL_SQUARE, answer_of

import kitecore
from kitecore import Client, Config, Kite
from kitecore.http import connect_websocket
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio


def open_kite(name: str) -> Kite:
    """A kite on the websocket transport, on loopback, serving ``square`` to anyone."""
    kite = Kite(
        name,
        "1.0.0",
        config=Config(ip="127.0.0.1", disable_authentication=True),
        plugins=load_plugins(names=["websocket"]),
    )
    kite.handle("square", lambda r: r.args.one() ** 2)
    return kite


@pytest.mark.parametrize("calls", [0, 1])
async def test_a_closed_connection_is_freed_without_the_cycle_collector(
    no_cycle_collector: None, calls: int
) -> None:
    kite = open_kite("freed")
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


#: An upgrade request, as a peer that then stays silent sends it.
_UPGRADE = (
    b"GET /kite HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)
#: Idle connections opened to measure what one costs the server.
_CROWD = 100
#: What one idle upgraded connection may hold of the server's Python memory, in KiB, per
#: backend (bench/connections.py measures the whole process; this is most of it). Measured:
#: 15.6 (asyncio) and 16.6 (trio) before the connection was slotted, its queues, the
#: client's backoff and hook lists made when first needed, one waiter maker shared per loop
#: and two coroutine frames dropped; 11.3 and 12.5 after.
_IDLE_BUDGET = {"asyncio": 13.0, "trio": 14.5}


async def _open_idle(port: int) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(_UPGRADE)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += await stream.receive(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


async def test_an_idle_connection_costs_the_server_little_memory(anyio_backend: str) -> None:
    """Python memory the server holds per idle upgraded connection (tracemalloc: allocations
    made by the server's tasks; the test's own side of the connections is left out)."""
    import tracemalloc

    kite = open_kite("crowd")
    connected = 0
    crowd_in = anyio.Event()

    @kite.on_connect
    def count(client: Client) -> None:
        nonlocal connected
        connected += 1
        if connected == _CROWD + 1:
            crowd_in.set()

    # the server's allocations: those with kitecore on the stack (the test's side of the
    # connections is anyio's and asyncio's or trio's alone)
    servers = [tracemalloc.Filter(True, f"{Path(kitecore.__file__).parent}/*", all_frames=True)]
    async with kite:
        warm_up = await _open_idle(kite.port)  # first-connection allocations are not per peer
        tracemalloc.start(30)
        try:
            before = tracemalloc.take_snapshot().filter_traces(servers)
            crowd = [await _open_idle(kite.port) for _ in range(_CROWD)]
            with anyio.fail_after(10):
                await crowd_in.wait()
            for _ in range(5):  # the last upgrades settle
                await anyio.sleep(0.01)
            after = tracemalloc.take_snapshot().filter_traces(servers)
        finally:
            tracemalloc.stop()
        for stream in [warm_up, *crowd]:
            await stream.aclose()
    per_connection = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_connection //= _CROWD
    assert per_connection <= _IDLE_BUDGET[anyio_backend] * 1024, (
        f"{per_connection} bytes per idle connection"
    )


async def test_callers_identities_cached_during_a_crowd_are_forgotten_after_it(
    anyio_backend: str, quick_crowd_release: Callable[..., None], release_times: list[float]
) -> None:
    """The kite caches the identities its callers send (parsing each once); entries made while
    a crowd of connections was there would outlive it and keep the memory arenas around them,
    so the kite forgets them when the server gives the crowd's memory back."""
    from kitecore.protocol.identity import KiteIdentity

    quick_crowd_release(3)
    released = release_times
    kite = open_kite("crowd")
    caller = Kite("caller", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))

    def cached() -> list[KiteIdentity]:
        return [o for o in gc.get_objects() if isinstance(o, KiteIdentity) and o.id == caller.id]

    async with kite:
        with anyio.fail_after(10):
            crowd = [await _open_idle(kite.port) for _ in range(3)]
            async with caller.new_client(kite.url) as client:
                assert await client.tell("square", 3) == 9
            assert cached()  # (kept for the next connection of the same caller)
            for stream in crowd:
                await stream.aclose()
            while len(released) < 2:  # noqa: ASYNC110 (the first phase of the release is done)
                await anyio.sleep(0.01)
        gc.collect()
        assert not cached()
