"""Issue 15: the calls one connection can have a kite queue or serve at once are bounded.

Past ``KITE_MAX_PENDING_CALLS`` calls of one peer queued or running, the kite stops reading
from that peer until half of them are done: its further calls wait in TCP (nothing is lost,
nothing is refused), its workers and queued requests stay bounded, other peers are served.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hardening_helpers import square_answered
from net_helpers import OP_PING, OP_PONG, OP_TEXT, RawWebSocket, call_message, client_frame

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["asyncio", "trio"])]

LIMIT = {"KITE_MAX_PENDING_CALLS": "64"}


async def test_a_flood_of_slow_calls_keeps_memory_bounded(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env=LIMIT)
    baseline = kite.rss()
    ws = RawWebSocket(kite.port)
    call = client_frame(OP_TEXT, call_message("sleep", [3600]).encode())
    calls = 40_000  # the old kite took them all: a worker task and a request each
    sent = ws.send_until_blocked(call * 100, calls * len(call))
    try:
        assert kite.alive
        assert await square_answered(kite.url)  # another peer is served meanwhile
        assert kite.rss() < baseline + 32 * 2**20, (sent // len(call), kite.rss() - baseline)
    finally:
        ws.close()
    assert await square_answered(kite.url)
    assert kite.alive


async def test_every_call_of_a_throttled_peer_is_answered(
    kite_process: Callable[..., Any], backend: str
) -> None:
    kite = await kite_process(backend=backend, env={"KITE_MAX_PENDING_CALLS": "8"})
    ws = RawWebSocket(kite.port)
    calls = 200  # 25 times the limit, each held for a while
    ws.sock.sendall(
        b"".join(
            client_frame(OP_TEXT, call_message("sleep", [0.05], callback_id=n).encode())
            for n in range(calls)
        )
    )
    answered: set[int] = set()
    while len(answered) < calls:
        opcode, payload = ws.receive_frame()
        if opcode == OP_PING:
            ws.send_frame(OP_PONG, payload)
            continue
        assert opcode == OP_TEXT, (opcode, payload)
        reply = json.loads(payload)
        assert reply["arguments"][0]["result"] is True
        answered.add(reply["method"])
    assert answered == set(range(calls))
    ws.close()
    assert kite.alive
