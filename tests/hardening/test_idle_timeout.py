"""Issue 15.2: a connection with no calls is closed after the idle timeout; live peers are not.

With ``KITE_IDLE_TIMEOUT=1`` a kite closes, with 1001 "idle timeout", an accepted connection
that has passed no dnode message either way for a second and has no call in flight
(``kitecore.idle``). Answering the WebSocket pings (sent after half a second of silence: a
dead-peer check) does not keep a peer that makes no calls; a call in flight or regular calls
do.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

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
#: How long a test waits for something the kite does after about a second (slow machines).
PATIENCE = 30.0


def next_frame_answering_pings(ws: RawWebSocket, until: float) -> tuple[int, bytes, int]:
    """The next frame that is not a ping, and how many pings were answered on the way;
    ``(0, b"", pings)`` when ``until`` (a ``time.monotonic()``) comes first."""
    ws.sock.settimeout(0.1)
    pings = 0
    try:
        while time.monotonic() < until:
            try:
                opcode, payload = ws.receive_frame()
            except TimeoutError:
                continue
            if opcode != OP_PING:
                return opcode, payload, pings
            ws.send_frame(OP_PONG, payload)
            pings += 1
        return 0, b"", pings
    finally:
        ws.sock.settimeout(10)


def close_code_and_reason(payload: bytes) -> tuple[int, str]:
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


async def test_a_silent_connection_is_pinged_then_closed_with_1001(
    kite_process: Callable[..., Any], backend: str
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


async def test_a_peer_that_only_answers_pings_is_closed_with_1001(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    ws = RawWebSocket(kite.port)
    opcode, payload, pings = next_frame_answering_pings(ws, time.monotonic() + PATIENCE)
    assert pings >= 1  # it was alive, as far as pings can tell
    assert opcode == OP_CLOSE
    assert close_code_and_reason(payload) == (1001, "idle timeout")
    ws.close()
    assert kite.alive
    assert await square_answered(kite.url)


async def test_a_call_in_flight_longer_than_the_timeout_is_not_cut(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    ws = RawWebSocket(kite.port)
    ws.send_text(call_message("sleep", [3]))  # three idle timeouts
    opcode, payload, pings = next_frame_answering_pings(ws, time.monotonic() + PATIENCE)
    assert opcode == OP_TEXT, f"got {opcode} {payload!r} instead of the reply"
    assert b"true" in payload
    assert pings >= 1  # the call ran through pings, not through a quiet second
    # with the reply sent, the connection is idle again: it goes after a timeout
    opcode, payload, _ = next_frame_answering_pings(ws, time.monotonic() + PATIENCE)
    assert opcode == OP_CLOSE
    assert close_code_and_reason(payload) == (1001, "idle timeout")
    ws.close()
    assert kite.alive


async def test_a_client_calling_regularly_is_not_cut(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    caller = Kite("idle-caller", "1.0.0")
    caller.config.disable_authentication = True
    caller.config.transport = "websocket"
    async with caller.new_client(kite.url) as client:
        connection = client.connection
        for n in range(12):  # three and a half timeouts, a call every 0.3 s
            assert await client.tell("square", n) == n * n
            await anyio.sleep(0.3)
        assert client.connection is connection
        assert connection is not None and not connection.closed
    assert kite.alive


async def test_an_idle_kite_client_is_closed_and_told_why(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env=IDLE)
    caller = Kite("idle-caller", "1.0.0")
    caller.config.disable_authentication = True
    caller.config.transport = "websocket"
    async with caller.new_client(kite.url) as client:
        assert await client.tell("square", 3) == 9
        connection = client.connection
        assert connection is not None
        with anyio.fail_after(PATIENCE):
            await connection.wait_closed()
        stream: Any = connection.stream  # the WebSocket stream: it says how it was closed
        assert (stream.close_code, stream.close_reason) == (1001, "idle timeout")
    assert kite.alive
    assert await square_answered(kite.url)
