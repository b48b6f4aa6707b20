"""A raw WebSocket peer's view of a kite: send dnode text, read the answer, check it serves."""

from __future__ import annotations

import json
from typing import Any

import anyio

#: ``square(3)`` with response callback 7, as a peer writes it by hand.
CALL_SQUARE = json.dumps(
    {
        "method": "square",
        "arguments": [{"withArgs": [3], "responseCallback": "[Function]"}],
        "callbacks": {"7": [0, "responseCallback"]},
    }
)


async def answer_of(ws: Any) -> dict[str, Any]:
    """The next message on a raw connection, as JSON."""
    with anyio.fail_after(5):
        answer: dict[str, Any] = json.loads(await ws.receive())
        return answer


async def assert_still_serving(ws: Any) -> None:
    """The connection still answers ``square(3)`` with 9."""
    await ws.send(CALL_SQUARE)
    reply = await answer_of(ws)
    assert reply == {"method": 7, "arguments": [{"error": None, "result": 9}], "callbacks": {}}
