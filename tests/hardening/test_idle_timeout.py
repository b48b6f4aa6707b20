"""Issue 15.2: an upgraded connection that stays silent is closed; a live one is never cut.

With ``KITE_IDLE_TIMEOUT=1`` the kite pings a connection silent for half a second and closes
one silent for a second with 1001; anything received (a pong too) is traffic.
"""

from __future__ import annotations

import struct
import time

import anyio
import pytest
from hardening_helpers import square_answered
from net_helpers import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, call_message

from kitecore import Kite

pytestmark = [
    pytest.mark.anyio,
    # the attacked kite runs on either backend: the asyncio fast path and the portable one
    pytest.mark.parametrize("backend", ["asyncio", "trio"]),
]

IDLE = {"KITE_IDLE_TIMEOUT": "1"}
RSS_GROWTH_BOUND = 32 * 2**20


async def test_a_silent_connection_is_pinged_then_closed_with_1001(
    kite_process, backend: str
) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    baseline = kite.rss()
    silent = [RawWebSocket(kite.port) for _ in range(20)]
    for ws in silent:
        opcodes = []
        while True:
            opcode, payload = ws.receive_frame()
            opcodes.append(opcode)
            if opcode in (OP_CLOSE, -1):
                break
        assert opcodes[0] == OP_PING  # the keepalive it did not answer
        assert opcode == OP_CLOSE
        assert struct.unpack("!H", payload[:2])[0] == 1001
        assert ws.receive_frame() == (-1, b"")  # and the server hung up
        ws.close()
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < baseline + RSS_GROWTH_BOUND


async def test_a_peer_that_answers_pings_is_kept(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    ws = RawWebSocket(kite.port)
    ws.sock.settimeout(0.2)
    pings = 0
    until = time.monotonic() + 3.5  # three idle timeouts and a half, no call at all
    while time.monotonic() < until:
        try:
            opcode, payload = ws.receive_frame()
        except TimeoutError:
            continue
        assert opcode == OP_PING, f"unexpected frame {opcode} {payload!r}"
        pings += 1
        ws.send_frame(OP_PONG, payload)
    assert pings >= 2
    ws.sock.settimeout(10)
    ws.send_text(call_message("square", [9]))
    opcode, payload = ws.receive_frame()
    while opcode == OP_PING:
        ws.send_frame(OP_PONG, payload)
        opcode, payload = ws.receive_frame()
    assert opcode == OP_TEXT
    assert b"81" in payload
    ws.close()
    assert kite.alive


async def test_an_idle_kite_client_stays_connected(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    caller = Kite("idle-caller", "1.0.0")
    caller.config.disable_authentication = True
    caller.config.transport = "websocket"
    async with caller.new_client(kite.url) as client:
        assert await client.tell("square", 3) == 9
        connection = client.connection
        await anyio.sleep(3.5)  # idle for three timeouts and a half; it answers the pings
        assert client.connection is connection
        assert connection is not None and not connection.closed
        assert await client.tell("square", 4) == 16
    assert kite.alive
    assert await square_answered(kite.url)
