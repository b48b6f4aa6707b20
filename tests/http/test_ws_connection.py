"""WebSocket server and client over real sockets (both ends ours unless said otherwise)."""

from __future__ import annotations

import anyio
import pytest
from http_helpers import raw_websocket, serving

from kitecore.http import (
    HandshakeError,
    HTTPRequest,
    HTTPServer,
    WebSocketConnection,
    WebSocketProtocolError,
    connect_websocket,
)
from kitecore.http.frames import OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT, Close, Pong

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocketConnection, request: HTTPRequest) -> None:
    async for message in ws:
        await ws.send(message)


def echo_server(**options: object) -> HTTPServer:
    server = HTTPServer(**options)  # type: ignore[arg-type]
    server.add_websocket_route("/ws", echo)
    return server


async def test_echo_round_trip_and_clean_close() -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"http://127.0.0.1:{port}/ws")
        for text in ("hello", "", "ünïcode ✓", '{"method":"ping"}'):
            await ws.send(text)
            assert await ws.receive() == text
        await ws.send_many(["a", "b", "c"])
        assert [await ws.receive() for _ in range(3)] == ["a", "b", "c"]
        await ws.aclose()
        assert ws.close_code == 1000
        with pytest.raises(anyio.ClosedResourceError):
            await ws.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await ws.send("x")


async def test_handler_return_closes_with_1000_and_server_close_code_reaches_client() -> None:
    server = HTTPServer()

    async def one_shot(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await ws.send("bye")

    async def custom(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await ws.aclose(4001, "go away")

    server.add_websocket_route("/one", one_shot)
    server.add_websocket_route("/custom", custom)
    async with serving(server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/one")
        with anyio.fail_after(5):
            assert await ws.receive() == "bye"
            with pytest.raises(anyio.EndOfStream):
                await ws.receive()
        assert ws.close_code == 1000
        with pytest.raises(anyio.BrokenResourceError):
            await ws.send("too late")
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/custom")
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await ws.receive()
        assert (ws.close_code, ws.close_reason) == (4001, "go away")


async def test_fragmented_and_binary_messages_are_assembled() -> None:
    async with serving(echo_server()) as port:
        raw = await raw_websocket(port)
        await raw.send_frame(OP_TEXT, b"frag", fin=False)
        await raw.send_frame(OP_PING, b"ping!")
        await raw.send_frame(OP_CONTINUATION, b"men", fin=False)
        await raw.send_frame(OP_CONTINUATION, b"ted", fin=True)
        await raw.send_frame(OP_BINARY, b'{"bin":1}')
        with anyio.fail_after(5):
            assert await raw.next_event() == Pong(b"ping!")
            assert await raw.next_event() == "fragmented"
            assert await raw.next_event() == '{"bin":1}'
        await raw.stream.aclose()


@pytest.mark.parametrize("size", [1 << 20, 3 * (1 << 20) + 7])
async def test_large_messages(size: int) -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        text = ("0123456789abcdef" * (size // 16 + 1))[:size]
        with anyio.fail_after(20):
            await ws.send(text)
            assert await ws.receive() == text
        await ws.aclose()


async def test_message_over_limit_closes_1009() -> None:
    async with serving(echo_server(max_message_size=1000)) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        await ws.send("x" * 1000)
        assert await ws.receive() == "x" * 1000
        await ws.send("x" * 1001)
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await ws.receive()
        assert ws.close_code == 1009
        assert "limit" in ws.close_reason


async def test_client_limit_raises_protocol_error() -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws", max_message_size=10)
        await ws.send("y" * 11)
        with anyio.fail_after(5), pytest.raises(WebSocketProtocolError) as info:
            await ws.receive()
        assert info.value.code == 1009 and ws.close_code == 1009
        with pytest.raises(anyio.EndOfStream):
            await ws.receive()


async def test_invalid_utf8_closes_1007() -> None:
    async with serving(echo_server()) as port:
        raw = await raw_websocket(port)
        await raw.send_frame(OP_TEXT, b"\xc3\x28")
        with anyio.fail_after(5):
            event = await raw.next_event()
        assert isinstance(event, Close) and event.code == 1007


async def test_peer_vanishing_mid_stream_ends_receive() -> None:
    server = HTTPServer()
    outcome: list[object] = []
    done = anyio.Event()

    async def watcher(ws: WebSocketConnection, request: HTTPRequest) -> None:
        try:
            outcome.append(await ws.receive())
            await ws.receive()
        except anyio.EndOfStream:
            outcome.append(("eof", ws.close_code))
        finally:
            done.set()

    server.add_websocket_route("/ws", watcher)
    async with serving(server) as port:
        raw = await raw_websocket(port)
        await raw.send_frame(OP_TEXT, b"first")
        # Half a frame, then the TCP connection goes away.
        await raw.stream.send(b"\x81\xfe\x10\x00abcd")
        await raw.stream.aclose()
        with anyio.fail_after(5):
            await done.wait()
    assert outcome == ["first", ("eof", 1006)]


async def test_many_clients_at_once() -> None:
    async with serving(echo_server()) as port:

        async def client(n: int) -> None:
            ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
            for i in range(30):
                await ws.send(f"{n}:{i}")
            assert [await ws.receive() for _ in range(30)] == [f"{n}:{i}" for i in range(30)]
            await ws.aclose()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon(client, n)


async def test_concurrent_senders_on_one_connection_do_not_interleave_frames() -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        payloads = {f"{n}:" + "z" * (70_000 + n) for n in range(20)}

        async with anyio.create_task_group() as tg:
            for text in payloads:
                tg.start_soon(ws.send, text)
        with anyio.fail_after(20):
            received = {await ws.receive() for _ in payloads}
        assert received == payloads
        await ws.aclose()


async def test_handshake_error_on_404() -> None:
    async with serving(echo_server()) as port:
        with pytest.raises(HandshakeError) as info:
            await connect_websocket(f"ws://127.0.0.1:{port}/nowhere")
        assert info.value.status_code == 404
        assert b"no route" in info.value.body
        assert isinstance(info.value, OSError)


async def test_connect_errors() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        # Accepts TCP but never answers the upgrade.
        with pytest.raises(TimeoutError):
            await connect_websocket(f"ws://127.0.0.1:{port}/", handshake_timeout=0.3)
    with pytest.raises(OSError):
        await connect_websocket(f"ws://127.0.0.1:{port}/")


async def test_upgrade_headers_and_origin() -> None:
    server = HTTPServer()
    seen: list[HTTPRequest] = []

    async def record(ws: WebSocketConnection, request: HTTPRequest) -> None:
        seen.append(request)

    server.add_websocket_route("/ws", record)
    async with serving(server) as port:
        ws = await connect_websocket(f"http://127.0.0.1:{port}/ws?x=1", headers=[("X-Kite", "yes")])
        await ws.aclose()
    (request,) = seen
    assert request.headers.get("origin") == f"http://127.0.0.1:{port}"
    assert request.headers.get("host") == f"127.0.0.1:{port}"
    assert request.headers.get("x-kite") == "yes"
    assert request.query == {"x": ["1"]}
    assert request.headers.get("sec-websocket-extensions") is None


async def test_unsupported_websocket_version_gets_426() -> None:
    server = HTTPServer()
    server.add_websocket_route("/ws", echo)
    async with serving(server) as port:
        raw = await anyio.connect_tcp("127.0.0.1", port)
        await raw.send(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        data = await raw.receive()
        assert data.startswith(b"HTTP/1.1 426 ")
        assert b"sec-websocket-version: 13" in data.lower()
