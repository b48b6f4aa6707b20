"""Issue 15.3: a ping flood from a peer that never reads must not queue pongs without end.

RFC 6455 (section 5.5.3) lets a server answer only the most recent ping: while the peer
does not take what the kite sends, at most one pong waits, and the kite stops reading.
"""

from __future__ import annotations

import pytest
from hardening_helpers import square_answered
from net_helpers import OP_PING, RawWebSocket, client_frame

pytestmark = pytest.mark.anyio

FLOOD = 200 * 2**20  # what the old kite took in full, queueing as many pongs
RSS_GROWTH_BOUND = 32 * 2**20


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
async def test_ping_flood_from_a_peer_that_does_not_read(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend)
    baseline = kite.rss()
    ws = RawWebSocket(kite.port, rcvbuf=4096)
    pings = client_frame(OP_PING, b"p" * 125) * 8000  # about 1 MB of pings
    sent = ws.send_until_blocked(pings, FLOOD)
    try:
        assert sent < FLOOD  # the kite stopped reading from a peer that takes no pong
        assert kite.alive
        assert await square_answered(kite.url)  # while the flood connection is open
        assert kite.rss() < baseline + RSS_GROWTH_BOUND
    finally:
        ws.close()
    assert await square_answered(kite.url)
    assert kite.alive
