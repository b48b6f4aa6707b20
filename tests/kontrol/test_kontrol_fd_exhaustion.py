"""Issue 15.1 for Kontrol: more connections than it has descriptors must not crash it.

Kontrol runs as its own process under ``ulimit -n 256`` and 300 TCP connections arrive; it
turns away those past the room its descriptors leave (503) and serves again afterwards.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path

import anyio
import pytest
from kite_kontrol.testing import KontrolProcess

from kitecore.testing import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the test side; Kontrol itself runs on each backend


class _LimitedKontrol(KontrolProcess):
    """Kontrol under ``ulimit -n 256``."""

    def command(self) -> list[str]:
        return ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh", *super().command()]


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _upgrade_answer(port: int) -> bytes:
    """The status line Kontrol gives a WebSocket upgrade on /kite."""
    with _connect(port) as sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET /kite HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            + key
            + b"\r\n\r\n"
        )
        return sock.recv(4096).split(b"\r\n")[0]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
async def test_kontrol_survives_more_connections_than_descriptors(
    tmp_path: Path, backend: str
) -> None:
    kontrol = _LimitedKontrol(tmp_path, port=free_port(), backend=backend)
    await kontrol.start()
    try:
        assert kontrol.process is not None
        rss_before = _rss(kontrol.process.pid)
        socks = [_connect(kontrol.port) for _ in range(300)]
        try:
            assert socks[-1].recv(4096).startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in socks:
                sock.close()
        with anyio.fail_after(20):
            # served again once it has seen the flood close
            while not _upgrade_answer(kontrol.port).startswith(b"HTTP/1.1 101 "):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert kontrol.process.returncode is None
        assert _rss(kontrol.process.pid) < rss_before + 64 * 2**20
    finally:
        await kontrol.stop()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")
