"""Tools of the network hardening tests: a raw-socket WebSocket peer that upgrades, writes
frames (masked, as a client must) and reads frames, and does only what a test tells it to
(never read, never answer pings, send HTTP the server should refuse); waiting for a line in
the attacked kite's log.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

import anyio
from hardening_helpers import KiteProcess, square_answered

from kitecore.client import DialError

__all__ = [
    "RawWebSocket",
    "call_message",
    "client_frame",
    "eventually_served",
    "http_exchange",
    "raw_connect",
    "wait_logged",
]

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CALLER = {
    "name": "raw",
    "username": "raw",
    "id": "raw-1",
    "environment": "test",
    "region": "test",
    "version": "1.0.0",
    "hostname": "raw",
}


async def wait_logged(kite: KiteProcess, text: str, timeout: float = 20.0) -> str:
    """Wait until ``text`` shows in the kite's stderr; return the whole log."""
    with anyio.fail_after(timeout):
        while True:
            log = kite.log_path.read_text(errors="replace")
            if text in log:
                return log
            await anyio.sleep(0.05)


async def eventually_served(url: str, timeout: float = 20.0) -> bool:
    """``square_answered``, retried while refused (503): the server may not have noticed
    yet that connections closed."""
    with anyio.fail_after(timeout):
        while True:
            try:
                return await square_answered(url)
            except DialError:
                await anyio.sleep(0.05)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame with ``payload``, masked (a zero mask: the bytes stay readable)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + b"\0\0\0\0" + payload


def call_message(method: str, args: list[Any], callback_id: int = 0) -> str:
    """A kite request calling ``method`` with ``args``; the reply calls back ``callback_id``."""
    options = {"kite": CALLER, "authentication": None, "responseCallback": "[Function]"}
    options["withArgs"] = args
    return json.dumps(
        {
            "method": method,
            "arguments": [options],
            "callbacks": {str(callback_id): [0, "responseCallback"]},
        }
    )


def raw_connect(port: int, *, host: str = "127.0.0.1", source: str | None = None) -> socket.socket:
    """A TCP connection to the kite (from ``source`` if given), blocking, 10 s timeout."""
    sock = socket.socket()
    sock.settimeout(10)
    if source is not None:
        sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def http_exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and return the answer's head (status line and headers)."""
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer.partition(b"\r\n\r\n")[0]


def upgrade_request(path: str = "/kite", version: str = "1.1", extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        f"GET {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n".encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n"
        + extra
        + b"\r\n"
    )


class RawWebSocket:
    """An upgraded raw connection to ``port``; ``rcvbuf`` shrinks its receive buffer (a peer
    that does not read then stops the server's sends sooner)."""

    def __init__(self, port: int, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        head = http_exchange(self.sock, upgrade_request())
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {head!r}")
        self._buffer = b""

    def send_frame(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def send_until_blocked(self, data: bytes, total: int, stall: float = 2.0) -> int:
        """Send ``data`` over and over, ``total`` bytes at most; stop early once the server
        has taken nothing for ``stall`` seconds (it stopped reading). Returns bytes sent."""
        self.sock.settimeout(stall)
        sent = 0
        view = memoryview(data)
        try:
            while sent < total:
                offset = 0
                while offset < len(view):
                    offset += self.sock.send(view[offset:])
                sent += len(view)
        except TimeoutError:
            sent += 0  # the partly sent chunk is not counted (a lower bound is enough)
        finally:
            self.sock.settimeout(10)
        return sent

    def receive_frame(self) -> tuple[int, bytes]:
        """The next frame as ``(opcode, payload)``; ``(-1, b"")`` at EOF or reset."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return -1, b""
            self._buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        data = self._buffer
        if len(data) < 2:
            return None
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if length == 126:
            if len(data) < 4:
                return None
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            if len(data) < 10:
                return None
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        if len(data) < offset + length:
            return None
        self._buffer = data[offset + length :]
        return opcode, data[offset : offset + length]

    def close(self) -> None:
        self.sock.close()
