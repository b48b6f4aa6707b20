"""The HTTP server's limits, on asyncio (the fast path) and trio (the portable path):
open connections, idle upgraded connections, bytes queued for a peer that does not read,
HTTP/1.0 upgrades and oversized request heads. (tests/hardening attacks a whole kite.)"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import SocketAttribute
from http_helpers import EVERY_LOOP, raw_websocket, serving

from kitecore.http import HTTPServer, WebSocketConnection, connect_websocket
from kitecore.http.asyncio_driver import accept_socket, flush_loop_free_lists
from kitecore.http.frames import OP_PONG, Close, Ping
from kitecore.http.limits import Renewal

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocketConnection, request: Any) -> None:
    async for message in ws:
        await ws.send(message)


def upgrade(version: str = "1.1", extra: bytes = b"") -> bytes:
    return (
        f"GET /ws HTTP/{version}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".encode()
        + extra
        + b"\r\n"
    )


async def answer(port: int, request: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
        return data


async def test_connections_over_max_connections_get_503(anyio_backend: str) -> None:
    server = HTTPServer(max_connections=2)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        held = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(2)]
        with anyio.fail_after(10):
            while server.limits.open < 2:  # noqa: ASYNC110 (a counter, no event to wait on)
                await anyio.sleep(0.01)
            assert (await answer(port, upgrade())).startswith(b"HTTP/1.1 503 ")
            await held.pop().aclose()
            while server.limits.open > 1:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
            await ws.send("hi")
            assert await ws.receive() == "hi"
            await ws.aclose()
        for stream in held:
            await stream.aclose()


async def test_a_silent_websocket_is_pinged_then_closed_with_1001(anyio_backend: str) -> None:
    server = HTTPServer(websocket_idle_timeout=0.4)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        ws = await raw_websocket(port)
        with anyio.fail_after(10):
            event = await ws.next_event()
            assert isinstance(event, Ping)  # the keepalive (maybe more than one) it ignores
            while isinstance(event, Ping):
                event = await ws.next_event()
        assert isinstance(event, Close) and event.code == 1001
        await ws.stream.aclose()


async def test_a_websocket_that_answers_pings_is_kept(anyio_backend: str) -> None:
    # 1 s: the pong has half a second to arrive, a margin for a loaded machine's pauses
    server = HTTPServer(websocket_idle_timeout=1.0)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        ws = await raw_websocket(port)
        pings = 0
        with anyio.move_on_after(3.5):  # three and a half idle timeouts
            while True:
                event = await ws.next_event()
                assert isinstance(event, Ping)
                pings += 1
                await ws.send_frame(OP_PONG, event.payload)
        assert pings >= 2
        await ws.send_frame(0x1, b"still here")
        with anyio.fail_after(10):
            event = await ws.next_event()
            while isinstance(event, Ping):
                await ws.send_frame(OP_PONG, event.payload)
                event = await ws.next_event()
        assert event == "still here"
        await ws.stream.aclose()


async def test_sends_to_a_peer_that_does_not_read_close_it_with_1008(anyio_backend: str) -> None:
    server = HTTPServer(max_outbound_bytes=1 << 20)
    outcome: list[object] = []
    done = anyio.Event()

    async def flood(ws: WebSocketConnection, request: Any) -> None:
        try:
            while True:  # like callbacks a kite starts itself: written without waiting
                ws.write_nowait(["x" * 65536])
                await anyio.lowlevel.checkpoint()
        except anyio.BrokenResourceError as exc:
            outcome.append(exc)
            outcome.append(ws.close_code)
        finally:
            done.set()

    server.add_websocket_route("/ws", flood)
    async with serving(server) as port:
        ws = await raw_websocket(port)  # and never read from
        with anyio.fail_after(20):
            await done.wait()
        await ws.stream.aclose()
    assert outcome[1] == 1008


async def test_an_http_1_0_upgrade_gets_400(anyio_backend: str) -> None:
    server = HTTPServer()
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        with anyio.fail_after(10):
            assert (await answer(port, upgrade("1.0"))).startswith(b"HTTP/1.1 400 ")


async def test_the_head_limit_holds_for_the_whole_head(anyio_backend: str) -> None:
    server = HTTPServer(max_header_size=16 * 1024)
    server.add_websocket_route("/ws", echo)
    lines = [b"X-F%d: %s\r\n" % (i, b"f" * 1000) for i in range(24)]  # ~24 KiB
    async with serving(server) as port:
        with anyio.fail_after(10):
            # arriving in one read, it used to take the upgrade fast path, which had no limit
            head = await answer(port, upgrade(extra=b"".join(lines)))
            assert head.startswith(b"HTTP/1.1 431 ")
            head = await answer(port, upgrade(extra=b"".join(lines[:8])))
            assert head.startswith(b"HTTP/1.1 101 ")


async def test_crowds_leaving_in_quick_succession_share_a_memory_release(
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    quick_crowd_release: Callable[..., None],
    release_times: list[float],
) -> None:
    """A full collection costs milliseconds: crowds that come and go every moment get it
    after a gap since the last crowd's, not each its own (deferred, never skipped)."""
    from kitecore.http import server as server_module

    quick_crowd_release(2)  # a crowd of two
    monkeypatch.setattr(server_module, "_RELEASE_MIN_GAP", 0.5)
    released = release_times
    server = HTTPServer(close_timeout=0.01)
    server.add_websocket_route("/ws", echo)

    async def crowd(port: int, releases: int) -> None:
        sockets = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(2)]
        while server.limits.open < 2:  # noqa: ASYNC110 (a counter, no event to wait on)
            await anyio.sleep(0.01)
        for stream in sockets:
            await stream.aclose()
        while len(released) < releases:  # noqa: ASYNC110
            await anyio.sleep(0.01)

    async with serving(server) as port:
        with anyio.fail_after(10):
            # a release, one after the close timeout and one once the renewals are done
            await crowd(port, 3)
            await crowd(port, 6)
    assert released[3] - released[2] >= 0.5  # the next crowd's waited for the gap


async def test_a_crowd_release_waits_while_a_new_crowd_is_served(
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    quick_crowd_release: Callable[..., None],
) -> None:
    """A full collection amid a crowd's calls holds them all up (milliseconds): when a new
    crowd comes before the last one's release is done, the release waits until it has gone
    (and then covers it too)."""
    from kitecore.http import server as server_module

    quick_crowd_release(2, delay=1.0)  # a crowd of two; the new crowd comes meanwhile
    monkeypatch.setattr(server_module, "_NEW_CROWD", 2)
    server = HTTPServer(close_timeout=0.01)
    open_at_release: list[int] = []
    monkeypatch.setattr(
        server_module, "release_free_memory", lambda: open_at_release.append(server.limits.open)
    )
    server.add_websocket_route("/ws", echo)

    async def crowd(port: int, size: int) -> list[anyio.abc.SocketStream]:
        sockets = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(size)]
        while server.limits.open < size:  # noqa: ASYNC110 (a counter, no event to wait on)
            await anyio.sleep(0.01)
        return sockets

    async with serving(server) as port:
        with anyio.fail_after(10):
            for stream in await crowd(port, 2):
                await stream.aclose()
            while not open_at_release:  # noqa: ASYNC110 (the first step of the release)
                await anyio.sleep(0.01)
            second = await crowd(port, 3)
            # the second step was due a second after the first: past that, it still waits
            await anyio.sleep(1.5)
            assert open_at_release == [0]
            for stream in second:
                await stream.aclose()
            while len(open_at_release) < 3:  # noqa: ASYNC110 (both steps are done)
                await anyio.sleep(0.01)
    assert open_at_release[:3] == [0, 0, 0]


async def test_after_a_crowd_its_accept_and_connection_task_group_are_made_anew(
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    quick_crowd_release: Callable[..., None],
    release_times: list[float],
) -> None:
    """What a crowd of connections found or made and what outlives it (the listener's pending
    accept, the task group whose tables held every connection of the crowd) is made anew
    once it has gone: kept, each such object would keep a 1 MiB arena of the crowd's memory
    (bench/connections.py). Connections still open stay served, new ones are accepted."""
    from kitecore.http import limits

    quick_crowd_release(3)  # a crowd of three
    released = release_times
    renewed: list[int] = []
    renew = limits.Renewal.renew
    monkeypatch.setattr(limits.Renewal, "renew", lambda self: renewed.append(renew(self)) or 0)
    server = HTTPServer(close_timeout=0.01)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        first_group = weakref.ref(server._connections)  # type: ignore[arg-type]
        with anyio.fail_after(10):
            stays = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
            crowd = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(23)]
            while server.limits.open < 24:  # noqa: ASYNC110 (a counter, no event to wait on)
                await anyio.sleep(0.01)
            for stream in crowd:
                await stream.aclose()
            while len(released) < 3:  # noqa: ASYNC110 (both phases of the release are done)
                await anyio.sleep(0.01)
            # the one that stayed is served on, in the group it started in
            await stays.send("still here")
            assert await stays.receive() == "still here"
            assert first_group() is not None
            await stays.aclose()
            while first_group() is not None:  # ends with its last connection
                await anyio.sleep(0.01)
                gc.collect()
            ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
            await ws.send("new")
            assert await ws.receive() == "new"
            await ws.aclose()
    assert len(renewed) == 3  # once in each phase of the release, once at its end
    if anyio_backend == "asyncio":  # (elsewhere anyio's listener accepts: nothing to renew)
        assert renewed == [1, 1, 1]  # the listener's pending accept, made anew


async def _open_crowd(server: HTTPServer, port: int, size: int) -> list[Any]:
    """``size`` raw TCP connections to ``port``, returned once ``server`` counts them open."""
    crowd = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(size)]
    while server.limits.open < size:  # noqa: ASYNC110 (a counter, no event to wait on)
        await anyio.sleep(0.01)
    return crowd


async def _still_echoes(port: int, text: str = "after") -> None:
    """The server at ``port`` still serves: its ``/ws`` echo answers ``text``."""
    ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
    await ws.send(text)
    assert await ws.receive() == text
    await ws.aclose()


class _RenewableAccept:
    """A non-blocking listener on loopback and :func:`accept_socket` on it, whose wait
    ``renewal`` can make anew; what it accepted goes to ``accepted``."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.renewal = Renewal()
        self.accepted: list[socket.socket] = []

    async def accept(self) -> None:
        self.accepted.append(await accept_socket(self.listener, self.renewal))


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_a_renewed_accept_loses_no_connection(anyio_backend: object) -> None:
    """The asyncio accept path waits for readiness and accepts itself: cutting the wait short
    (to make it anew) can never lose a connection the way cancelling ``loop.sock_accept``
    after its callback accepted one would."""
    acceptor = _RenewableAccept()
    with acceptor.listener, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(acceptor.accept)
            while not acceptor.renewal.renew():  # the accept waits: end that wait (anew)
                await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            client = await anyio.connect_tcp("127.0.0.1", acceptor.port)
        async with client:
            with acceptor.accepted[0] as accepted:
                assert accepted.getpeername() == client.extra(SocketAttribute.local_address)


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_a_renewed_accept_frees_its_wait_before_it_makes_the_next(
    anyio_backend: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made anew, the accept's wait for readiness is freed, and then the interpreter's free
    lists emptied (a full collection), before the next wait is made: else the next wait's
    handle context and argument tuple come from the free lists, where the old ones were, in
    the crowd's memory."""
    from kitecore.http import asyncio_driver

    made: list[weakref.ref[Any]] = []  # each wait made
    at_collect: list[tuple[int, bool]] = []  # waits made before it, all gone after it?
    readable = asyncio_driver._readable

    def tracked(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Any:
        wait = readable(loop, sock)
        made.append(weakref.ref(wait))
        return wait

    def collect() -> int:
        count = len(made)
        found = gc.collect()
        at_collect.append((count, all(wait() is None for wait in made)))
        return found

    monkeypatch.setattr(asyncio_driver, "_readable", tracked)
    monkeypatch.setattr(asyncio_driver, "gc", type("GC", (), {"collect": staticmethod(collect)}))
    acceptor = _RenewableAccept()
    with acceptor.listener, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(acceptor.accept)
            while not acceptor.renewal.renew():  # the accept waits: made anew
                await anyio.lowlevel.checkpoint()
            while len(made) < 2:  # the next wait
                await anyio.lowlevel.checkpoint()
            client = await anyio.connect_tcp("127.0.0.1", acceptor.port)
        async with client:
            acceptor.accepted[0].close()
    assert at_collect == [(1, True)]  # before the next wait was made, the first gone after


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_the_loops_free_lists_let_go_of_a_crowds_objects(anyio_backend: object) -> None:
    """After a crowd, the objects the event loop keeps for reuse (future iterators; uvloop's
    handles and timer handles) are the crowd's last ones, scattered over its memory arenas:
    flushed, the loop keeps fresh ones instead and the crowd's are freed."""
    loop = asyncio.get_running_loop()
    on_uvloop = not isinstance(anyio_backend, str)
    future = loop.create_future()
    # fewer than the free lists hold: all of them go there (none freed: ids stay theirs)
    crowd: list[object] = [future.__await__() for _ in range(200)]
    if on_uvloop:  # (asyncio's own handles are plain objects, kept in no free list)
        for _ in range(200):
            crowd.append(loop.call_soon(lambda: None))
            crowd.append(loop.call_later(3600, lambda: None))
            crowd[-1].cancel()  # type: ignore[attr-defined]
            crowd[-2].cancel()  # type: ignore[attr-defined]
        await anyio.lowlevel.checkpoint()
    crowd_ids = {id(item) for item in crowd}
    del crowd  # now in the free lists
    await flush_loop_free_lists()
    reused: list[object] = [future.__await__() for _ in range(200)]
    if on_uvloop:
        reused += [loop.call_soon(lambda: None) for _ in range(200)]
        reused += [loop.call_later(3600, lambda: None) for _ in range(200)]
    try:
        assert not crowd_ids & {id(item) for item in reused}
    finally:
        for item in reused:
            if isinstance(item, asyncio.Handle):
                item.cancel()
        future.cancel()


#: The scenario of the test below, run in an interpreter of its own (where pymalloc's pools
#: hold only what start-up and this script made: in a test session, whatever earlier tests
#: left in the pools of this size decides where new objects go). It prints how many of the
#: crowd's memory pools hold an object the free list kept after the flush.
_FREE_LIST_SCENARIO = """
import asyncio, sys
from kitecore.http.asyncio_driver import flush_loop_free_lists

POOL = 16384  # pymalloc's memory pools: 16 KiB, aligned (an object's pool: its address over it)

async def main():
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    # a crowd of future iterators; the free list gets every eighth of them (freed first: it
    # takes the first 255 freed), so that each of the crowd's pools keeps some, with room
    crowd = [future.__await__() for _ in range(2400)]
    crowd_pools = {id(item) // POOL for item in crowd}
    scattered = crowd[::8][:255]
    rest = [item for i, item in enumerate(crowd) if i % 8 or i >= 8 * 255]
    del crowd
    del scattered  # into the free list
    del rest  # freed (the free list is full)
    await flush_loop_free_lists()
    kept = [future.__await__() for _ in range(255)]  # what the free list kept
    print(len({id(item) // POOL for item in kept} & crowd_pools))
    future.cancel()

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_what_the_free_lists_keep_after_a_flush_is_made_away_from_the_crowd(loop: str) -> None:
    """The fresh objects the loop's free lists keep after a flush are made in memory pools of
    their own, not in the room the crowd left beside its free-listed objects: there, they would
    keep the crowd's arenas from being released just as the crowd's objects did."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")  # (as EVERY_LOOP's uvloop: the core alone has none)
    done = subprocess.run(
        [sys.executable, "-c", _FREE_LIST_SCENARIO, loop],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", done.stdout  # none of the crowd's pools


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_the_free_lists_are_flushed_again_once_the_crowds_task_group_has_ended(
    anyio_backend: object,
    monkeypatch: pytest.MonkeyPatch,
    quick_crowd_release: Callable[..., None],
) -> None:
    """The release's last act is one more flush of the loop's free lists, once the task group
    that held the crowd has ended: what the free lists kept from the flushes before was made
    while that group and the objects made anew were still there, beside them."""
    from kitecore.http import server as server_module

    quick_crowd_release(3)  # a crowd of three
    first_group: weakref.ref[Any] | None = None
    flushes: list[bool] = []  # for each flush: had the crowd's task group ended?

    async def flush() -> None:
        assert first_group is not None
        gc.collect()
        flushes.append(first_group() is None)
        await flush_loop_free_lists()

    monkeypatch.setattr(server_module, "flush_loop_free_lists", flush)
    server = HTTPServer(close_timeout=0.01)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        first_group = weakref.ref(server._connections)
        with anyio.fail_after(10):
            for stream in await _open_crowd(server, port, 3):
                await stream.aclose()
            while len(flushes) < 3:  # noqa: ASYNC110 (one in each step, one at the end)
                await anyio.sleep(0.01)
    assert flushes == [False, False, True]


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_asyncios_tables_of_a_crowd_are_compacted_after_it(
    anyio_backend: object,
    quick_crowd_release: Callable[..., None],
    release_times: list[float],
) -> None:
    """After a crowd, asyncio's set of all tasks (in place: the same set object, every task
    still in it) and, on asyncio's own loop, the selector's map of descriptors are sized for
    what they hold again, not for the crowd (a set or dict never shrinks by itself: 512 and
    288 KiB after 10,000 connections)."""
    import asyncio.tasks
    import selectors

    quick_crowd_release(3)
    all_tasks = asyncio.tasks._all_tasks.data  # type: ignore[attr-defined]
    selector = getattr(asyncio.get_running_loop(), "_selector", None)
    server = HTTPServer(close_timeout=0.01)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        with anyio.fail_after(20):
            crowd = await _open_crowd(server, port, 300)
            peak = sys.getsizeof(all_tasks)
            for stream in crowd:
                await stream.aclose()
            while len(release_times) < 3:  # noqa: ASYNC110 (both steps of the release are done)
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            assert asyncio.tasks._all_tasks.data is all_tasks  # type: ignore[attr-defined]
            assert asyncio.current_task() in asyncio.tasks._all_tasks  # type: ignore[attr-defined]
            # as small as a fresh copy (of what is left: some tasks may end meanwhile)
            assert sys.getsizeof(all_tasks) <= sys.getsizeof(set(all_tasks))
            assert sys.getsizeof(all_tasks) < peak
            if isinstance(selector, selectors.BaseSelector):  # (uvloop: none)
                fd_to_key = selector._fd_to_key  # type: ignore[attr-defined]
                assert sys.getsizeof(fd_to_key) <= sys.getsizeof(dict(fd_to_key))
            await _still_echoes(port)


async def test_the_task_group_connections_go_to_after_a_crowd_was_made_before_it(
    anyio_backend: str,
    quick_crowd_release: Callable[..., None],
    release_times: list[float],
) -> None:
    """The task group that takes the connections after a crowd was made before the crowd
    came (made amid the release, its objects went where objects still alive left room, in
    the crowd's memory, and stayed there alone); its own successor is made at the end of the
    release, after everything else."""
    quick_crowd_release(3)
    server = HTTPServer(close_timeout=0.01)
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        first = server._connections
        ahead = server._spare
        assert ahead is not None and ahead[0] is not first
        with anyio.fail_after(10):
            for stream in await _open_crowd(server, port, 3):
                await stream.aclose()
            while server._spare is ahead or server._spare is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            assert len(release_times) == 3  # (the successor: made last)
            assert server._connections is ahead[0]
            await _still_echoes(port)


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)  # asyncio, uvloop
async def test_the_loops_reader_tables_are_made_anew(anyio_backend: object) -> None:
    """renew_reader_tables has the loop's maps of descriptors watched for reading reallocate
    their tables now (sized for what they hold): after a crowd, the tables are where the
    last accept's wait had them made, in the crowd's memory."""
    from kitecore.http.asyncio_driver import renew_reader_tables

    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)

    def tables() -> list[dict[Any, Any]]:
        if selector is not None:  # asyncio's own loop: the selector's map
            return [selector._fd_to_key]
        return [d for d in gc.get_referents(loop) if isinstance(d, dict)]  # uvloop's maps

    before = {id(table): sys.getsizeof(table) for table in tables()}
    pairs = [socket.socketpair() for _ in range(24)]  # (more than an accept's waits had)
    try:
        for first, _second in pairs:
            loop.add_reader(first, lambda: None)
        grown = {id(table): sys.getsizeof(table) for table in tables()}
        for first, _second in pairs:
            loop.remove_reader(first)
    finally:
        for first, second in pairs:
            first.close()
            second.close()
    big = [table for table in tables() if grown.get(id(table), 0) > before.get(id(table), 0)]
    assert big  # (the maps that held the descriptors)
    renew_reader_tables(loop)
    assert all(sys.getsizeof(table) < grown[id(table)] for table in big)
