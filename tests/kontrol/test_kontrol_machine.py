"""registerMachine policies: secret (default), open, none, custom."""

from __future__ import annotations

import pytest
from kite_auth_token import verify_kite_key
from kite_kontrol.machine import MachineDenied, OpenPolicy, SecretPolicy
from kontrol_helpers import KONTROL_USER, SECRET

from kitecore import Authentication, GenericError

pytestmark = pytest.mark.anyio


async def test_secret_policy_issues_a_working_kite_key(kontrol, make_kite):
    kite = make_kite(username="carol")
    async with kite:
        async with kite.new_client(kontrol.url) as client:  # no credentials yet
            key = await client.tell("registerMachine", {"authType": "secret", "secret": SECRET})
        claims = verify_kite_key(key, trust=kontrol.public_key)
        assert (claims.subject, claims.issuer, claims.kontrol_url) == (
            "carol",
            KONTROL_USER,
            kontrol.url,
        )
        async with kite.new_client(kontrol.url, auth=Authentication("kiteKey", key)) as client:
            assert (await client.tell("register", {"url": kite.url}))["url"] == kite.url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "cannot authenticate user: no registration secret given"),
        ({"secret": "wrong"}, "cannot authenticate user: wrong registration secret"),
        ({"secret": SECRET, "username": "a/b"}, "cannot authenticate user: invalid username"),
    ],
)
async def test_secret_policy_refuses(kontrol, make_kite, args, message):
    kite = make_kite()
    async with kite.new_client(kontrol.url) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("registerMachine", args)
        assert info.value.message.startswith(message)


async def test_username_argument_and_kitectl_bare_string(make_kontrol, make_kite):
    kontrol = await make_kontrol(machine_policy=OpenPolicy())
    kite = make_kite(username="ignored")
    async with kite.new_client(kontrol.url) as client:
        by_field = await client.tell("registerMachine", {"username": "dave"})
        by_string = await client.tell("registerMachine", "erin")
    assert verify_kite_key(by_field, trust=kontrol.public_key).subject == "dave"
    assert verify_kite_key(by_string, trust=kontrol.public_key).subject == "erin"


async def test_no_policy_refuses_everyone(make_kontrol, make_kite):
    kontrol = await make_kontrol(machine_policy=None)
    async with make_kite().new_client(kontrol.url) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("registerMachine", {"secret": SECRET})
        assert info.value.message == "no valid authentication key found"


async def test_custom_policy_sees_request_and_args(make_kontrol, make_kite):
    seen = []

    class OnlyAlice:
        async def authorize(self, request, username, args):
            seen.append((request.kite.name, username, args.get("authType")))
            if username != "alice":
                raise MachineDenied("only alice")

    kontrol = await make_kontrol(machine_policy=OnlyAlice())
    async with make_kite("cli").new_client(kontrol.url) as client:
        assert await client.tell("registerMachine", {"authType": "custom"})
        with pytest.raises(GenericError, match="cannot authenticate user: only alice"):
            await client.tell("registerMachine", {"username": "bob"})
    assert seen == [("cli", "alice", "custom"), ("cli", "bob", None)]


def test_secret_policy_needs_a_secret():
    with pytest.raises(ValueError):
        SecretPolicy("")
    assert "s3" not in repr(SecretPolicy("s3cret"))
