"""Issue 15 §3 (third bullet): ``kite.heartbeat`` with interval ``1e-9`` against a real kite.

Unbounded, the kite sent 168,000 callback frames in 3 s. Now an interval from a peer that
dialed the kite is raised to ``min_heartbeat_interval`` (1 s by default) and a connection
has one ticker at most (a new request replaces it), so the pings stay a handful.
"""

from __future__ import annotations

import anyio
import pytest
from hardening_helpers import square_answered

from kitecore import ArgumentError, Kite

pytestmark = pytest.mark.anyio

#: The attacked kite's resident memory afterwards (it starts at about 50 MB).
RSS_BOUND = 150 * 1024 * 1024
#: How long the attack runs; at 1 s per ping that is at most 4 pings per ticker.
ATTACK_SECONDS = 3.0


def _attacker() -> Kite:
    kite = Kite("attacker", "1.0.0")
    kite.config.disable_authentication = True
    kite.config.transport = "websocket"
    return kite


async def test_tiny_heartbeat_intervals_are_raised_to_the_minimum(kite_process):
    kite = await kite_process()
    pings = 0

    def ping() -> None:
        nonlocal pings
        pings += 1

    async with _attacker().new_client(kite.url) as client:
        assert await client.tell("kite.heartbeat", 1e-9, ping) is None
        await anyio.sleep(ATTACK_SECONDS)  # the attack's duration, not a synchronisation
        assert 1 <= pings <= ATTACK_SECONDS + 2
        # many requests on one connection still leave one ticker running
        for _ in range(200):
            await client.tell("kite.heartbeat", 1e-9, ping)
        pings = 0
        await anyio.sleep(ATTACK_SECONDS)
        assert pings <= ATTACK_SECONDS + 2
        for bad in (0, -1e-9, -1):
            with pytest.raises(ArgumentError, match="interval must be positive"):
                await client.tell("kite.heartbeat", bad, ping)
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < RSS_BOUND


async def test_the_minimum_comes_from_the_environment(kite_process):
    kite = await kite_process(env={"KITE_MIN_HEARTBEAT_INTERVAL": "100ms"})
    enough = anyio.Event()
    pings = 0

    def ping() -> None:
        nonlocal pings
        pings += 1
        if pings == 5:
            enough.set()

    async with _attacker().new_client(kite.url) as client:
        await client.tell("kite.heartbeat", 1e-9, ping)
        with anyio.fail_after(10):  # five pings come at 0.1 s, well before 1 s each
            await enough.wait()
    assert await square_answered(kite.url)
