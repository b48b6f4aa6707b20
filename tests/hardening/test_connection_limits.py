"""Issue 15.1/15.2: a configured maximum of open connections, in all and per peer address.

Past either limit a new connection gets a bare 503 and is closed before anything is read;
the connections already open are untouched, and room made by closing some is usable again.
"""

from __future__ import annotations

import pytest
from hardening_helpers import square_answered
from net_helpers import eventually_served, http_exchange, raw_connect, upgrade_request

from kitecore.client import DialError

pytestmark = [
    pytest.mark.anyio,
    # the attacked kite runs on either backend: the asyncio fast path and the portable one
    pytest.mark.parametrize("backend", ["asyncio", "trio"]),
]

RSS_GROWTH_BOUND = 64 * 2**20


def refused(sock) -> bool:  # type: ignore[no-untyped-def]
    return bool(sock.recv(4096).startswith(b"HTTP/1.1 503 Service Unavailable"))


async def test_connections_past_max_connections_get_503(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend, env={"KITE_MAX_CONNECTIONS": "50"})
    baseline = kite.rss()
    held = [raw_connect(kite.port) for _ in range(50)]
    extra = [raw_connect(kite.port) for _ in range(20)]
    try:
        assert all(refused(sock) for sock in extra)
        with pytest.raises(DialError, match="503"):
            await square_answered(kite.url)
        for sock in held[:5]:
            sock.close()
        assert await eventually_served(kite.url)
        assert kite.rss() < baseline + RSS_GROWTH_BOUND
    finally:
        for sock in held + extra:
            sock.close()
    assert kite.alive
    assert await square_answered(kite.url)


async def test_connections_per_address_are_limited_when_enabled(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend, env={"KITE_MAX_CONNECTIONS_PER_IP": "5"})
    held = [raw_connect(kite.port) for _ in range(5)]
    try:
        sixth = raw_connect(kite.port)
        assert refused(sixth)
        sixth.close()
        # another address is not affected (all of 127/8 is loopback on Linux)
        other = raw_connect(kite.port, source="127.0.0.2")
        assert http_exchange(other, upgrade_request()).startswith(b"HTTP/1.1 101")
        other.close()
        with pytest.raises(DialError, match="503"):
            await square_answered(kite.url)
    finally:
        for sock in held:
            sock.close()
    assert await eventually_served(kite.url)
    assert kite.alive
