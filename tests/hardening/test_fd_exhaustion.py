"""Issue 15.1: more connections than the process has descriptors must not crash a kite.

Two ways to run out: connections alone (the server turns away those past what its
descriptor limit leaves room for, with a 503), and descriptors used up by something else
(``accept`` fails with EMFILE: the server backs off, logs once, serves what it has).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from hardening_helpers import free_port, square_answered
from net_helpers import (
    eventually_served,
    http_exchange,
    raw_connect,
    upgrade_request,
    wait_logged,
)

from kitecore.kontrol.testing import KontrolProcess

pytestmark = [
    pytest.mark.anyio,
    # the attacked kite runs on either backend: the asyncio fast path and the portable one
    pytest.mark.parametrize("backend", ["asyncio", "trio"]),
]

FD_HOG_KITE = Path(__file__).with_name("fd_hog_kite.py")
#: What 300 idle connections may add to the kite's memory.
RSS_GROWTH_BOUND = 64 * 2**20


async def test_connections_past_the_descriptor_limit_get_503_and_the_kite_lives(
    kite_process,
    backend: str,
) -> None:
    kite = await kite_process(backend=backend, nofile=256)
    baseline = kite.rss()
    socks = [raw_connect(kite.port) for _ in range(300)]
    try:
        # accepted in order: the last ones are past the room 256 descriptors leave
        refused = socks[-40:]
        for sock in refused:
            assert sock.recv(4096).startswith(b"HTTP/1.1 503 Service Unavailable")
        assert kite.alive
        # below the limit again (some close), a normal caller is served during the flood
        for sock in socks[:20]:
            sock.close()
        assert await eventually_served(kite.url)  # once the kite has seen them close
        assert kite.rss() < baseline + RSS_GROWTH_BOUND
    finally:
        for sock in socks:
            sock.close()
    assert await square_answered(kite.url)
    assert kite.alive


async def test_accept_failing_with_emfile_backs_off_and_recovers(
    kite_process, backend: str
) -> None:
    kite = await kite_process(
        backend=backend, script=FD_HOG_KITE, nofile=256, env={"HOG_LEAVE": "16"}
    )
    baseline = kite.rss()
    socks = [raw_connect(kite.port) for _ in range(300)]
    try:
        await wait_logged(kite, "cannot accept connections")
        assert kite.alive
        assert kite.rss() < baseline + RSS_GROWTH_BOUND
    finally:
        for sock in socks:
            sock.close()
    assert await square_answered(kite.url)
    assert kite.alive
    log = await wait_logged(kite, "accepting connections again")
    assert log.count("cannot accept connections") == 1  # once per burst, not per attempt


class _LimitedKontrol(KontrolProcess):
    """Kontrol under ``ulimit -n 256``."""

    def command(self) -> list[str]:
        return ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh", *super().command()]


async def test_kontrol_survives_more_connections_than_descriptors(
    tmp_path: Path, backend: str
) -> None:
    kontrol = _LimitedKontrol(tmp_path, port=free_port(), backend=backend)
    await kontrol.start()
    try:
        assert kontrol.process is not None
        socks = [raw_connect(kontrol.port) for _ in range(300)]
        try:
            assert socks[-1].recv(4096).startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in socks:
                sock.close()
        with anyio.fail_after(20):
            while True:  # served again once it has seen the flood close
                sock = raw_connect(kontrol.port)
                head = http_exchange(sock, upgrade_request())
                sock.close()
                if head.startswith(b"HTTP/1.1 101 "):
                    break
                await anyio.sleep(0.05)
        assert kontrol.process.returncode is None
    finally:
        await kontrol.stop()
