"""Issue 15.7: an upgrade over HTTP/1.0 is refused (RFC 6455 requires HTTP/1.1), and the
documented 64 KiB limit holds for the whole request head, however it arrives."""

from __future__ import annotations

import pytest
from hardening_helpers import square_answered
from net_helpers import http_exchange, raw_connect, upgrade_request

pytestmark = [
    pytest.mark.anyio,
    # the attacked kite runs on either backend: the asyncio fast path and the portable one
    pytest.mark.parametrize("backend", ["asyncio", "trio"]),
]


async def test_an_http_1_0_upgrade_is_refused(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend)
    sock = raw_connect(kite.port)
    head = http_exchange(sock, upgrade_request(version="1.0"))
    sock.close()
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"101" not in head.split(b"\r\n")[0]
    assert kite.alive
    assert await square_answered(kite.url)


@pytest.mark.parametrize("head_kib", [70, 100, 127])
async def test_a_request_head_over_64_kib_gets_431(
    kite_process, backend: str, head_kib: int
) -> None:
    kite = await kite_process(backend=backend)
    baseline = kite.rss()
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(head_kib))
    sock = raw_connect(kite.port)
    head = http_exchange(sock, upgrade_request(extra=filler))
    sock.close()
    assert head.startswith(b"HTTP/1.1 431 ")
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < baseline + 16 * 2**20


async def test_a_head_just_under_the_limit_is_served(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend)
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(60))
    sock = raw_connect(kite.port)
    head = http_exchange(sock, upgrade_request(extra=filler))
    sock.close()
    assert head.startswith(b"HTTP/1.1 101 ")
