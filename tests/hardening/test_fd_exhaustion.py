"""Issue 15.1: more connections than the process has descriptors must not crash a kite.

Two ways to run out: connections alone (the server turns away those past what its
descriptor limit leaves room for, with a 503), and descriptors used up by something else
(``accept`` fails with EMFILE: the server backs off, logs once, serves what it has).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_helpers import square_answered
from net_helpers import eventually_served, raw_connect, wait_logged

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
