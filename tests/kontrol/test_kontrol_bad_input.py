"""Bad input gets a clear error and stores nothing."""

from __future__ import annotations

import pytest
from kontrol_helpers import kite_key

from kitecore import Authentication, AuthenticationError, GenericError, KiteError, Query

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty url"),
        ({"url": ""}, "empty url"),
        ({}, "empty url"),
        ("ftp://10.0.0.1/kite", "invalid register URL: ftp://10.0.0.1/kite"),
        ("http://", "invalid register URL: http://"),
        ("not a url", "invalid register URL: not a url"),
        ("http://host:99999/kite", "invalid register URL: http://host:99999/kite"),
        ({"url": 42}, "invalid register URL"),
    ],
)
async def test_register_bad_url(kontrol, make_kite, url, message):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("register", url)
        assert info.value.message.startswith(message)
    assert await kontrol.storage.get(Query(id=kite.id)) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"environment": "a/b"}, "Field \"environment\" must not contain '/'"),
        ({"region": ""}, "Empty Kite field: region"),
    ],
)
async def test_register_bad_identity(kontrol, make_kite, fields, message):
    kite = make_kite(**fields)
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("register", {"url": "http://10.0.0.1:1/kite"})
        assert info.value.message == message
    assert await kontrol.storage.get(Query(id=kite.id)) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"query": {}}, "invalid query: all query fields are empty"),
        ({}, "invalid query: no query object given"),
        ({"query": {"username": 5}}, 'invalid query: query field "username" is not a string: 5'),
        ({"query": {"username": "a/b"}}, "invalid query: Field \"username\" must not contain '/'"),
        ({"query": {"username": "a", "version": ">= x.y"}}, "invalid query: Malformed"),
    ],
)
async def test_get_kites_bad_query(kontrol, make_kite, args, message):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("getKites", args)
        assert info.value.message.startswith(message)


async def test_get_kites_argument_must_be_an_object(kontrol, make_kite):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with pytest.raises(KiteError) as info:
            await client.tell("getKites", "alice")
        assert info.value.type == "argumentError"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "No authentication information is provided"),
        (Authentication("sessionID", "abc"), "Unknown authentication type: sessionID"),
        (Authentication("kiteKey", "garbage"), "kiteKey: token contains an invalid number"),
        (Authentication("kiteKey", "a.b.c"), "kiteKey: malformed token"),
        (Authentication("kiteKey", ""), "kiteKey: malformed token"),
        (Authentication("token", "a.b.c"), "token: malformed token"),
    ],
)
async def test_bad_credentials(kontrol, make_kite, auth, message):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=auth) as client:
        for method, args in [("register", [{"url": kite.url}]), ("getKites", [{"query": {}}])]:
            with pytest.raises(AuthenticationError) as info:
                await client.tell(method, *args)
            assert info.value.message.startswith(message)
    assert await kontrol.storage.get(Query(id=kite.id)) == []


async def test_id_of_another_user_cannot_be_hijacked(kontrol, make_kite):
    victim = make_kite(username="alice")
    async with victim, victim.new_client(kontrol.url, auth=kite_key(kontrol, "alice")) as client:
        await client.tell("register", {"url": victim.url})
        thief = make_kite(username="mallory")
        thief.id = victim.id
        async with thief.new_client(kontrol.url, auth=kite_key(kontrol, "mallory")) as evil:
            with pytest.raises(GenericError, match="registered by another user"):
                await evil.tell("register", {"url": "http://evil.example:1/kite"})
        assert [r.url for r in await kontrol.storage.get(Query(id=victim.id))] == [victim.url]
