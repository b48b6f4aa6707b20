"""POST /register and GET /heartbeat on Kontrol's HTTP server."""

from __future__ import annotations

import json

import anyio
import pytest
from kontrol_helpers import foreign_kite_key

from kitecore import Query
from kitecore.http.client import HTTPClient
from kitecore.protocol.identity import KiteIdentity

pytestmark = pytest.mark.anyio


def base(kontrol) -> str:
    return kontrol.url.removesuffix("/kite")


def identity(**fields: str) -> KiteIdentity:
    values = dict(
        username="claimed",
        environment="production",
        name="http-kite",
        version="1.0.0",
        region="eu",
        hostname="h1",
        id="7f3c9a4e-2b1d-4c5e-8f6a-1b2c3d4e5f60",
    )
    values.update(fields)
    return KiteIdentity(**values)


async def post_register(http, kontrol, body) -> tuple[int, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = await http.request("POST", base(kontrol) + "/register", body=data)
    return result.status, json.loads(result.body)


async def heartbeat(http, kontrol, kite_id: str) -> tuple[int, bytes]:
    result = await http.request("GET", f"{base(kontrol)}/heartbeat?id={kite_id}")
    return result.status, result.body


async def test_http_register_and_heartbeat(kontrol):
    kite = identity()
    body = {
        "url": "http://10.0.0.9:7000/kite",
        "kite": kite.to_wire(),
        "auth": {"type": "kiteKey", "key": kontrol.create_kite_key("alice")},
    }
    async with HTTPClient(timeout=10) as http:
        status, answer = await post_register(http, kontrol, body)
        assert (status, answer) == (
            200,
            {"url": "http://10.0.0.9:7000/kite", "heartbeatInterval": 0.1},
        )
        (record,) = await kontrol.storage.get(Query(id=kite.id))
        assert record.kite.username == "alice"  # forced to the kite.key's sub
        # heartbeats keep it alive well past its TTL
        for _ in range(int(kontrol.settings.key_ttl * 2.5 / 0.1)):
            assert await heartbeat(http, kontrol, kite.id) == (200, b"pong")
            await anyio.sleep(0.1)
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
        await anyio.sleep(kontrol.settings.key_ttl + 0.2)  # silence: it expires
        assert await heartbeat(http, kontrol, kite.id) == (200, b"registeragain")
        assert await heartbeat(http, kontrol, "unknown-id") == (200, b"registeragain")
        status, _ = await heartbeat(http, kontrol, "")
        assert status == 400
        status, _ = await heartbeat(http, kontrol, "a/b")
        assert status == 400


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "invalid JSON body"),
        ([], 400, "the body must be a JSON object"),
        (
            {"url": "http://a:1/kite", "auth": {"type": "token", "key": "x"}},
            400,
            "Unexpected authentication type: token",
        ),
        (
            {"url": "http://a:1/kite", "auth": {"type": "kiteKey", "key": "x.y.z"}},
            401,
            "kiteKey: malformed token",
        ),
        ({"url": "ftp://a/kite", "auth": "GOOD", "kite": "GOOD"}, 400, "invalid register URL"),
        ({"url": "", "auth": "GOOD", "kite": "GOOD"}, 400, "empty url"),
        (
            {"url": "http://a:1/kite", "auth": "GOOD", "kite": {"name": "x"}},
            400,
            "Empty Kite field",
        ),
        (
            {"url": "http://a:1/kite", "auth": "GOOD", "kite": "not an object"},
            400,
            "kite is not an object",
        ),
        (
            {"url": "http://a:1/kite", "auth": "EVIL", "kite": "GOOD"},
            401,
            "kiteKey: kontrol key is not trusted",
        ),
    ],
)
async def test_http_register_errors(kontrol, evil_pair, body, status, message):
    if isinstance(body, dict):
        if body.get("auth") == "GOOD":
            body["auth"] = {"type": "kiteKey", "key": kontrol.create_kite_key("alice")}
        if body.get("auth") == "EVIL":
            body["auth"] = {"type": "kiteKey", "key": foreign_kite_key(evil_pair)}
        if body.get("kite") == "GOOD":
            body["kite"] = identity().to_wire()
    async with HTTPClient(timeout=10) as http:
        got_status, answer = await post_register(http, kontrol, body)
    assert got_status == status
    assert answer["err"].startswith(message)
    assert await kontrol.storage.get(Query(username="alice")) == []
