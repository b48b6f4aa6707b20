"""The client's opening handshake against hand-written servers: the fast path for a plain
``101`` and everything that must go through h11 instead."""

from __future__ import annotations

import base64
import hashlib

import anyio
import pytest
from anyio.abc import SocketStream

from kitecore.http import HandshakeError, connect_websocket

pytestmark = pytest.mark.anyio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(request: bytes) -> str:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            digest = hashlib.sha1(value.strip() + GUID).digest()
            return base64.b64encode(digest).decode()
    raise AssertionError("no Sec-WebSocket-Key in the request")


async def serve_once(answer, after: bytes = b""):
    """A server answering one upgrade request with ``answer(accept)``, then ``after``
    (a text frame, unmasked), then waiting for the client to close."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            await stream.send(answer(accept_for(request)) + after)
            with anyio.move_on_after(5):
                while await stream.receive():
                    pass

    return listener, port, handle


TEXT_FRAME = b"\x81\x05hello"  # an unmasked server text frame "hello"

GOOD = [
    # the fast path: a plain 101, with a frame in the same segment
    lambda a: (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {a}\r\n\r\n"
    ).encode(),
    # bare LF line ends
    lambda a: (
        "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
        f"Sec-WebSocket-Accept: {a}\n\n"
    ).encode(),
    # an informational 100 before the 101
    lambda a: (
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\n\r\n"
    ).encode(),
    # no reason phrase, folded header
    lambda a: (
        "HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"X-Long: one\r\n two\r\nSec-WebSocket-Accept: {a}\r\n\r\n"
    ).encode(),
]


@pytest.mark.parametrize("answer", GOOD, ids=["plain", "lf-only", "100-then-101", "folded"])
async def test_accepted_handshakes_deliver_the_first_frame(answer):
    listener, port, handle = await serve_once(answer, TEXT_FRAME)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/", handshake_timeout=5)
        try:
            with anyio.fail_after(5):
                assert await ws.receive() == "hello"
        finally:
            await ws.aclose()
        tg.cancel_scope.cancel()


BAD = [
    (lambda a: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope", "403"),
    (
        lambda a: (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
        ),
        "Sec-WebSocket-Accept",
    ),
    (lambda a: b"garbage\r\n\r\n", ""),
    (lambda a: b"HTTP/1.1 101 Switching", ""),  # cut short, then the server closes
]


@pytest.mark.parametrize(("answer", "mentions"), BAD, ids=["403", "bad-accept", "garbage", "cut"])
async def test_refused_or_broken_handshakes_raise(answer, mentions):
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            await stream.send(answer(accept_for(request)))

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with anyio.fail_after(10), pytest.raises((HandshakeError, OSError)) as info:
            await connect_websocket(f"ws://127.0.0.1:{port}/", handshake_timeout=5)
        assert mentions in str(info.value)
        if mentions == "403":
            assert isinstance(info.value, HandshakeError) and info.value.status_code == 403
        tg.cancel_scope.cancel()
