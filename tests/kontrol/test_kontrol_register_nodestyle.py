"""``register`` from a kite that answers ``kite.heartbeat`` node-style with ``[null]``, as a
kite.js kite does (issue 10.5): Kontrol answers ``register`` without waiting for that reply, so
the registration succeeds whatever the reply looks like. A raw WebSocket peer (the `websockets`
library) plays the kite, so the wire is exactly what kite.js sends."""

from __future__ import annotations

import json
import uuid

import anyio
import pytest
import websockets
from kontrol_helpers import kite_key

from kitecore import Query
from kitecore.protocol.identity import KiteIdentity

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def test_register_succeeds_when_the_kite_answers_heartbeat_with_a_lone_null(kontrol):
    identity = KiteIdentity("alice", "production", "jsmath", "1.0.0", "eu", "js", str(uuid.uuid4()))
    url = "http://127.0.0.1:9/kite"
    register = {
        "method": "register",
        "arguments": [
            {
                "kite": identity.to_wire(),
                "authentication": kite_key(kontrol).to_wire(),
                "withArgs": [{"url": url}],
                "responseCallback": "[Function]",
            }
        ],
        "callbacks": {"0": ["0", "responseCallback"]},
        "links": [],
    }
    ws_url = kontrol.url.replace("http://", "ws://")
    async with websockets.connect(ws_url, compression=None) as ws:
        await ws.send(json.dumps(register))
        response = None
        heartbeat_answered = False
        with anyio.fail_after(10):
            while response is None or not heartbeat_answered:
                message = json.loads(await ws.recv())
                if message["method"] == "kite.heartbeat":
                    (reply_id,) = [
                        cid for cid, path in message["callbacks"].items()
                        if path[-1] == "responseCallback"
                    ]  # fmt: skip
                    # node-style (err) with no result: what kite.js sends back
                    await ws.send(
                        json.dumps({"method": int(reply_id), "arguments": [None], "callbacks": {}})
                    )
                    heartbeat_answered = True
                elif message["method"] == 0:
                    response = message["arguments"][0]
        assert response["error"] is None, response
        assert response["result"] == {"url": url, "heartbeatInterval": 0}
        (record,) = await kontrol.storage.get(Query(id=identity.id))
        assert record.url == url
