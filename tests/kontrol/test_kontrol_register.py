"""register / getKites / getToken / getKey over RPC, with real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib

import pytest
from kite_auth_token import verify_kite_key, verify_token
from kontrol_helpers import KONTROL_USER, kite_key

from kitecore import Authentication, AuthenticationError, GenericError, Query

pytestmark = pytest.mark.anyio


async def serve_registered(stack, kontrol, kite):
    """Start ``kite`` and register it on ``stack``; returns its client to Kontrol."""
    await stack.enter_async_context(kite)
    auth = kite_key(kontrol, kite.config.username)
    client = await stack.enter_async_context(kite.new_client(kontrol.url, auth=auth))
    await client.tell("register", {"url": kite.url})
    return client


async def test_register_then_get_kites(kontrol, make_kite):
    kite = make_kite("math", username="alice")
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        result = await client.tell("register", {"url": kite.url})
        assert result == {"url": kite.url, "heartbeatInterval": 0}
        answer = await client.tell(
            "getKites",
            {"query": {"username": "alice", "environment": "production", "name": "math"}},
        )
    (entry,) = answer["kites"]
    assert entry["kite"] == kite.identity.to_wire()
    assert entry["url"] == kite.url
    assert entry["keyId"] == kontrol.keyring.current.id
    claims = verify_token(
        entry["token"], public_key=kontrol.public_key, issuer=KONTROL_USER, kite=kite.identity
    )
    assert claims.subject == "alice"
    assert claims.audience == "/alice/production/math"


async def test_username_comes_from_the_kite_key(kontrol, make_kite):
    kite = make_kite("math", username="claimed-name")
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol, "bob")) as client:
        await client.tell("register", {"url": kite.url})
        (record,) = await kontrol.storage.get(Query(id=kite.id))
        assert record.kite.username == "bob"
        assert await kontrol.storage.get(Query(username="claimed-name")) == []


async def test_register_accepts_kitejs_bare_url(kontrol, make_kite):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        result = await client.tell("register", kite.url)
        assert result["url"] == kite.url
        assert [r.url for r in await kontrol.storage.get(Query(id=kite.id))] == [kite.url]


async def test_reregister_with_new_url_updates(kontrol, make_kite):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": "http://10.0.0.1:1/kite"})
        await client.tell("register", {"url": "http://10.0.0.2:2/kite"})
        answer = await client.tell("getKites", {"query": {"id": kite.id}})
    assert [k["url"] for k in answer["kites"]] == ["http://10.0.0.2:2/kite"]


async def test_get_kites_queries(kontrol, make_kite):
    kites = [make_kite("math", version) for version in ("1.0.0", "1.2.0", "1.4.1", "2.0.0")]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await serve_registered(stack, kontrol, kite) for kite in kites]
        caller = clients[0]

        async def versions(**query):
            answer = await caller.tell("getKites", {"query": query})
            return sorted(k["kite"]["version"] for k in answer["kites"])

        assert await versions(username="alice", name="math") == ["1.0.0", "1.2.0", "1.4.1", "2.0.0"]
        assert await versions(username="alice", version="~> 1.1") == ["1.2.0", "1.4.1"]
        assert await versions(username="alice", version=">= 1.0, < 1.4") == ["1.0.0", "1.2.0"]
        assert await versions(username="alice", version="1.2.0") == ["1.2.0"]
        assert await versions(name="math", environment="production") == [
            "1.0.0",
            "1.2.0",
            "1.4.1",
            "2.0.0",
        ]
        assert await versions(username="nobody") == []
        answer = await caller.tell("getKites", {"query": {"id": kites[2].id}})
        (entry,) = answer["kites"]
        assert entry["kite"]["version"] == "1.4.1"
        # no username in the query: the audience names the kite found, never the root "/"
        claims = verify_token(
            entry["token"],
            public_key=kontrol.public_key,
            issuer=KONTROL_USER,
            kite=kites[2].identity,
        )
        assert claims.audience == "/alice/production/math"


async def test_kontrol_registers_itself(kontrol, make_kite):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        answer = await client.tell("getKites", {"query": {"name": "kontrol"}})
    (entry,) = answer["kites"]
    assert entry["url"] == kontrol.url
    assert entry["kite"]["username"] == KONTROL_USER


async def test_get_token(kontrol, make_kite):
    kites = [make_kite("math"), make_kite("math")]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await serve_registered(stack, kontrol, kite) for kite in kites]
        caller = clients[0]
        target = kites[1].identity
        token = await caller.tell("getToken", target.to_wire())
        assert await caller.tell("getToken", target.to_wire()) == token  # cached
        forced = await caller.tell("getToken", {**target.to_wire(), "force": True})
        assert forced != token
        for t in (token, forced):
            claims = verify_token(
                t, public_key=kontrol.public_key, issuer=KONTROL_USER, kite=target
            )
            assert claims.subject == "alice"
        with pytest.raises(GenericError, match="query matches more than one kite"):
            await caller.tell("getToken", {"username": "alice", "name": "math"})
        with pytest.raises(GenericError, match="no kites found"):
            await caller.tell("getToken", {"username": "alice", "name": "nothing"})


async def test_token_auth_for_kontrol_methods(kontrol, make_kite):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        token = await client.tell("getToken", kontrol.identity.to_wire())
        assert await client.tell("getKey") == kontrol.public_key
    async with kite, kite.new_client(kontrol.url, auth=Authentication("token", token)) as client:
        answer = await client.tell("getKites", {"query": {"name": "kontrol"}})
        assert len(answer["kites"]) == 1
        with pytest.raises(AuthenticationError) as info:
            await client.tell("register", {"url": "http://10.0.0.1:1/kite"})
        assert info.value.message == "Unexpected authentication type: token"
        with pytest.raises(AuthenticationError, match="Unexpected authentication type: token"):
            await client.tell("getKey")
    assert await kontrol.storage.get(Query(id=kite.id)) == []


async def test_identity_and_kite_key_contents(kontrol, make_kite):
    """The stored identity is the caller's own; kite.keys carry Kontrol's claims."""
    kite = make_kite("math", username="alice")
    async with contextlib.AsyncExitStack() as stack:
        await serve_registered(stack, kontrol, kite)
        (record,) = await kontrol.storage.get(Query(id=kite.id))
        assert record.kite == kite.identity
    claims = verify_kite_key(kontrol.create_kite_key("zed"), trust=kontrol.public_key)
    assert claims.subject == "zed" and claims.issuer == KONTROL_USER
    assert claims.kontrol_url == kontrol.url
