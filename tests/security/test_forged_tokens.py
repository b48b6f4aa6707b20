"""Forged variants of real Kontrol tokens, against a kite and against Kontrol itself.

Bob's ``math`` and Carol's ``db`` register with a real Kontrol; Alice finds them with
``getKites`` and so holds real tokens. Each forgery below is made from one of those tokens and
presented on a new connection, to ``math`` (the kite-auth-token authenticator) and to Kontrol
(Kontrol's own token authenticator, a separate implementation). Every one must be refused with
an ``authenticationError`` naming the reason, while Alice's legitimate connections keep being
served.

Forgeries that need a signature Kontrol would make (expired, not yet valid, wrong issuer) are
signed with Kontrol's real private key: they stand for tokens Kontrol could have issued, and
show that a valid signature is not enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kite_kontrol.server import Kontrol
from security_helpers import claims_of, hs256_signed, resigned, tampered, unsigned

from kitecore import Authentication, AuthenticationError, Client, Kite
from kitecore.storage import KeyPairRecord

pytestmark = pytest.mark.anyio


@dataclass
class Scene:
    """Who holds what once the kites are registered and Alice has found them."""

    kontrol: Kontrol
    math: Kite
    caller: Kite
    math_client: Client  # from getKites, dialed: Alice's legitimate connection to math
    math_token: str  # a real token for math
    db_token: str  # a real token for Carol's db (another user's kite)
    kontrol_token: str  # a real token for Kontrol itself


@pytest.fixture
async def scene(kontrol, make_kite) -> Scene:
    math = await make_kite("math", kontrol.create_kite_key("bob"))
    await make_kite("db", kontrol.create_kite_key("carol"))
    caller = await make_kite("caller", kontrol.create_kite_key("alice"), register=False)
    [math_client] = await caller.get_kites(username="bob", environment="production", name="math")
    [db_client] = await caller.get_kites(username="carol", environment="production", name="db")
    await math_client.dial()
    assert await math_client.tell("whoami") == "alice"
    return Scene(
        kontrol=kontrol,
        math=math,
        caller=caller,
        math_client=math_client,
        math_token=math_client.auth.key,
        db_token=db_client.auth.key,
        kontrol_token=await caller.get_token(kontrol.identity),
    )


Forgery = Callable[[str, Scene, KeyPairRecord, KeyPairRecord], str]


def _now() -> int:
    return int(time.time())


#: name -> (forge(real_token, scene, kontrol_pair, evil_pair), reason in the error)
FORGERIES: dict[str, tuple[Forgery, str]] = {
    "signed by an unknown key": (
        lambda token, _s, _k, evil: resigned(token, evil.private),
        "token is expired",  # on purpose: a bad signature asks the caller to renew
    ),
    "alg none": (
        lambda token, *_: unsigned(claims_of(token)),
        "invalid signing method",
    ),
    "HS256 signed with Kontrol's public key": (
        lambda token, _s, pair, _e: hs256_signed(claims_of(token), pair.public.encode()),
        "invalid signing method",
    ),
    "expired": (
        lambda token, _s, pair, _e: resigned(
            token, pair.private, exp=_now() - 60, iat=_now() - 7200, nbf=_now() - 7200
        ),
        "token is expired",
    ),
    "not yet valid": (
        lambda token, _s, pair, _e: resigned(token, pair.private, nbf=_now() + 3600),
        "token is not valid yet",
    ),
    "wrong issuer": (
        lambda token, _s, pair, _e: resigned(token, pair.private, iss="mallory"),
        "issuer is not trusted: mallory",
    ),
    "tampered subject": (
        lambda token, *_: tampered(token, sub="bob"),
        "token is expired",
    ),
    "tampered audience": (
        lambda token, *_: tampered(token, aud="/"),
        "token is expired",
    ),
    "another user's kite": (
        lambda _token, scene, *_: scene.db_token,
        'username "carol" not allowed',
    ),
}


async def refused(caller: Kite, url: str, auth: Authentication | None, method: str) -> str:
    """Call ``method`` on ``url`` with ``auth`` over a new connection; the refusal message."""
    async with caller.new_client(url, auth=auth) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.tell(
                method, *([{"query": {"name": "kontrol"}}] if method == "getKites" else [])
            )
    return info.value.message


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_refused_by_the_kite(name, scene, kontrol_pair, evil_pair):
    forge, reason = FORGERIES[name]
    forged = forge(scene.math_token, scene, kontrol_pair, evil_pair)
    assert forged != scene.math_token
    message = await refused(scene.caller, scene.math.url, Authentication("token", forged), "whoami")
    assert message.startswith("token: ") and reason in message, message
    # the legitimate connection, and a new one with the real token, are still served
    assert await scene.math_client.tell("whoami") == "alice"
    async with scene.caller.new_client(
        scene.math.url, auth=Authentication("token", scene.math_token)
    ) as client:
        assert await client.tell("whoami") == "alice"


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_refused_by_kontrol(name, scene, kontrol_pair, evil_pair):
    forge, reason = FORGERIES[name]
    forged = forge(scene.kontrol_token, scene, kontrol_pair, evil_pair)
    assert forged != scene.kontrol_token
    kontrol = scene.kontrol
    message = await refused(scene.caller, kontrol.url, Authentication("token", forged), "getKites")
    assert message.startswith("token: ") and reason in message, message
    # Kontrol still serves the real token, and Alice's own Kontrol connection
    async with scene.caller.new_client(
        kontrol.url, auth=Authentication("token", scene.kontrol_token)
    ) as client:
        answer = await client.tell("getKites", {"query": {"name": "math"}})
    assert [entry["url"] for entry in answer["kites"]] == [scene.math.url]
    [again] = await scene.caller.get_kites(id=scene.math.id)
    assert again.url == scene.math.url


async def test_the_real_tokens_carry_what_the_forgeries_change(scene):
    """Control: the forgeries above change something that matters in the real tokens."""
    math, db, own = (claims_of(t) for t in (scene.math_token, scene.db_token, scene.kontrol_token))
    assert (math["sub"], math["aud"], math["iss"]) == (
        "alice",
        "/bob/production/math",
        "kontrol-admin",
    )
    assert db["aud"] == "/carol/production/db"
    assert own["aud"] == f"/kontrol-admin/{scene.kontrol.identity.environment}/kontrol"
    assert math["nbf"] <= time.time() < math["exp"]
