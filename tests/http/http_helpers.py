"""Helpers for the HTTP / WebSocket tests: a running server, raw HTTP and raw WebSocket peers."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from kitecore.http import HTTPServer
from kitecore.http.frames import FrameDecoder, encode_frame

#: The event loops the WebSocket drivers are tested on (with ``loop_backend`` as the fixture).
EVERY_LOOP = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param("trio", id="trio"),
]


def loop_backend(request: pytest.FixtureRequest) -> Any:
    """An ``anyio_backend`` fixture body over :data:`EVERY_LOOP`."""
    if request.param[0] == "asyncio" and isinstance(request.param, tuple):
        pytest.importorskip("uvloop")
    return request.param


@asynccontextmanager
async def serving(server: HTTPServer) -> AsyncIterator[int]:
    """Run ``server`` on a free port for the duration of the block; yields the port."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


async def read_http_response(stream: SocketStream, buffer: bytearray) -> tuple[bytes, bytes]:
    """Read one Content-Length-framed response from ``stream``: (head, body)."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive()
    buffer[:] = rest[length:]
    return head, rest[:length]


class RawWebSocket:
    """A hand-driven client: sends arbitrary frames, decodes what the server sends."""

    def __init__(self, stream: SocketStream, leftover: bytes) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(expect_masked=False, max_message_size=1 << 30)
        self._leftover = leftover

    async def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        frame = bytearray(encode_frame(opcode, payload, mask=True))
        if not fin:
            frame[0] &= 0x7F
        await self.stream.send(bytes(frame))

    async def next_event(self) -> object:
        """The next message (str) or control event from the server."""
        while True:
            if self.decoder.messages:
                return self.decoder.messages.popleft()
            data, self._leftover = self._leftover, b""
            if not data:
                data = await self.stream.receive()
            controls = self.decoder.feed(data)
            if controls:
                return controls[0]


async def raw_websocket(port: int, path: str = "/ws") -> RawWebSocket:
    """Open a websocket by hand (no kitecore client) to test the server's frame handling."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    await stream.send(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, rest = buffer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return RawWebSocket(stream, rest)
