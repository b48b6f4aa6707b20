"""Issue 15.3: one connection must not make the kite hold unbounded bytes for a peer that
does not read.

Replies: while more than 64 KiB wait for the peer, the kite reads nothing more from it, so
1 MB ``echo`` calls stop being taken in. Sends the kite starts itself (callbacks, like a
heartbeat) obey ``KITE_MAX_OUTBOUND_BYTES``: past it the connection is closed with 1008.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hardening_helpers import square_answered
from net_helpers import (
    CALLER,
    OP_CLOSE,
    OP_TEXT,
    RawWebSocket,
    call_message,
    client_frame,
    wait_logged,
)

pytestmark = pytest.mark.anyio

FLOOD_KITE = Path(__file__).with_name("flood_kite.py")
BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


@BACKENDS
async def test_big_echoes_to_a_peer_that_does_not_read(kite_process, backend: str) -> None:
    kite = await kite_process(backend=backend)
    baseline = kite.rss()
    ws = RawWebSocket(kite.port, rcvbuf=4096)
    call = client_frame(OP_TEXT, call_message("echo", ["e" * 2**20]).encode())
    calls = 300  # the old kite took them all in: 300 MB of replies queued
    sent = ws.send_until_blocked(call, calls * len(call))
    try:
        assert sent < calls * len(call)  # the kite stopped reading
        assert kite.alive
        assert await square_answered(kite.url)  # while the connection is still open
        assert kite.rss() < baseline + 64 * 2**20
    finally:
        ws.close()
    assert await square_answered(kite.url)
    assert kite.alive


@BACKENDS
async def test_callbacks_to_a_peer_that_does_not_read_close_it_with_1008(
    kite_process, backend: str
) -> None:
    limit = 4 * 2**20
    kite = await kite_process(
        script=FLOOD_KITE, backend=backend, env={"KITE_MAX_OUTBOUND_BYTES": str(limit)}
    )
    baseline = kite.rss()
    ws = RawWebSocket(kite.port, rcvbuf=4096)
    options = {"kite": CALLER, "responseCallback": "[Function]"}
    options["withArgs"] = [2000, 65536, "[Function]"]
    request = {
        "method": "flood",
        "arguments": [options],
        "callbacks": {"0": [0, "responseCallback"], "1": [0, "withArgs", 2]},
    }
    ws.send_text(json.dumps(request))  # 128 MB of callbacks, none read for now
    try:
        await wait_logged(kite, "closing websocket with 1008")
        assert kite.alive
        assert kite.rss() < baseline + 32 * 2**20
        assert await square_answered(kite.url)
        # the connection is over: what was queued (at most the limit), then the end
        received = 0
        while True:
            opcode, payload = ws.receive_frame()
            if opcode in (OP_CLOSE, -1):
                break
            received += len(payload)
        assert received < 2 * limit
    finally:
        ws.close()
    assert kite.alive
