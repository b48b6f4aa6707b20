"""The kiteKey and token authenticators on a real kite over real sockets.

Every forged credential must be refused with an ``authenticationError`` naming the reason, and
the kite must keep serving its legitimate callers.
"""

from __future__ import annotations

import time

import pytest
from auth_forge import hs256_signed, rsa_signed, unsigned, with_claims
from kite_auth_token import KeyPair, create_kite_key, mint_token
from kite_auth_token import authenticators as authenticators_module
from kite_auth_token import plugin as token_plugin

from kitecore import Authentication, AuthenticationError, Kite
from kitecore.plugins import load_plugins
from kitecore.testing import CORE_PLUGINS

pytestmark = pytest.mark.anyio

RS256 = {"alg": "RS256", "typ": "JWT"}


@pytest.fixture
def kite_plugins():
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


def test_the_entry_point_registers_both_authenticators():
    registry = load_plugins(names=["token"], strict=True)
    assert set(registry.authenticators) == {"kiteKey", "token"}


@pytest.fixture
async def math(make_kite, kite_config, kontrol_pair):
    """bob's kite ``math`` in ``production``, trusting ``kontrol_pair``, auth on."""

    async def whoami(r):
        return r.username

    config = kite_config.copy()
    config.username = "bob"
    config.environment = "production"
    config.kontrol_user = "kontrol"
    config.kontrol_key = kontrol_pair.public
    config.disable_authentication = False
    return await make_kite("math", methods={"whoami": whoami}, config=config)


@pytest.fixture
async def dial(kite_config, kite_plugins):
    """``await dial(kite, auth)``: a client of ``kite`` (closed at the end of the test)."""
    import contextlib

    async with contextlib.AsyncExitStack() as stack:

        async def connect(kite, auth):
            caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
            return await stack.enter_async_context(caller.new_client(kite.url, auth=auth))

        yield connect


def token(pair: KeyPair, **overrides) -> str:
    options = {"issuer": "kontrol", "subject": "alice", "audience": "/bob/production/math"}
    options.update(overrides)
    return mint_token(private_key=pair.private, **options)


def claims(**overrides):
    now = int(time.time())
    values = {
        "iss": "kontrol",
        "sub": "alice",
        "aud": "/bob/production/math",
        "exp": now + 3600,
        "iat": now - 300,
        "nbf": now - 300,
        "jti": "forged",
    }
    values.update(overrides)
    return values


async def test_valid_token_is_accepted(math, dial, kontrol_pair):
    for audience in ("/bob/production/math", "/bob/production", "/bob", "/"):
        client = await dial(math, Authentication("token", token(kontrol_pair, audience=audience)))
        assert await client.tell("whoami") == "alice"


def forged_tokens(kontrol_pair: KeyPair, attacker_pair: KeyPair) -> dict[str, tuple[str, str]]:
    """name -> (token, expected reason)."""
    now = time.time()
    good = token(kontrol_pair)
    return {
        "unknown key": (token(attacker_pair), "token is expired"),
        "alg none": (unsigned({"alg": "none", "typ": "JWT"}, claims()), "invalid signing method"),
        "HS256 with the public key": (
            hs256_signed({"alg": "HS256", "typ": "JWT"}, claims(), kontrol_pair.public.encode()),
            "invalid signing method",
        ),
        "expired": (token(kontrol_pair, now=now - 3 * 86400), "token is expired"),
        "not valid yet": (
            rsa_signed(RS256, claims(nbf=int(now) + 3600), kontrol_pair.private),
            "token is not valid yet",
        ),
        "wrong audience": (token(kontrol_pair, audience="/carol"), 'username "carol" not allowed'),
        "wrong environment": (
            token(kontrol_pair, audience="/bob/staging"),
            'environment "staging" not allowed',
        ),
        "wrong kite": (token(kontrol_pair, audience="/bob/production/fs"), 'kite "fs" not allowed'),
        "wrong issuer": (token(kontrol_pair, issuer="mallory"), "issuer is not trusted: mallory"),
        "tampered": (with_claims(good, sub="mallory"), "token is expired"),
        "garbage": ("not-a-jwt", "token contains an invalid number of segments"),
    }


async def test_forged_tokens_are_refused_and_the_kite_keeps_serving(
    math, dial, kontrol_pair, attacker_pair
):
    legit = await dial(math, Authentication("token", token(kontrol_pair)))
    attacker = await dial(math, None)
    with pytest.raises(AuthenticationError, match="No authentication information is provided"):
        await attacker.tell("whoami")
    for name, (forged, reason) in forged_tokens(kontrol_pair, attacker_pair).items():
        attacker.auth = Authentication("token", forged)
        with pytest.raises(AuthenticationError) as info:
            await attacker.tell("whoami")
        assert info.value.message.startswith("token: "), name
        assert reason in info.value.message, name
        assert await legit.tell("whoami") == "alice", name
    # the refused caller's own connection still serves unauthenticated methods
    assert await attacker.tell("kite.ping") == "pong"


async def test_unknown_auth_type(math, dial):
    client = await dial(math, Authentication("sessionID", "x"))
    with pytest.raises(AuthenticationError, match="Unknown authentication type: sessionID"):
        await client.tell("whoami")


async def test_cached_token_is_keyed_by_the_trusted_key(math, dial, kontrol_pair, attacker_pair):
    client = await dial(math, Authentication("token", token(kontrol_pair)))
    assert await client.tell("whoami") == "alice"
    math.config.kontrol_key = attacker_pair.public  # Kontrol rotated its key
    with pytest.raises(AuthenticationError, match="token: token is expired"):
        await client.tell("whoami")


async def test_token_needs_a_configured_kontrol(math, dial, kontrol_pair):
    math.config.kontrol_key = ""
    client = await dial(math, Authentication("token", token(kontrol_pair)))
    with pytest.raises(AuthenticationError, match="token: this kite has no Kontrol key"):
        await client.tell("whoami")


# --- kiteKey ------------------------------------------------------------------------------------


def kite_key(pair: KeyPair, username: str = "alice", signer: KeyPair | None = None) -> str:
    key = create_kite_key(
        username=username,
        issuer="kontrol",
        kontrol_url="http://kontrol/kite",
        public_key=pair.public,
        private_key=pair.private,
    )
    if signer is None:
        return key
    header, payload, _ = key.split(".")
    from auth_forge import decode_segment

    return rsa_signed(decode_segment(header), decode_segment(payload), signer.private)


async def test_trusted_kite_key_is_accepted(math, dial, kontrol_pair):
    client = await dial(math, Authentication("kiteKey", kite_key(kontrol_pair)))
    assert await client.tell("whoami") == "alice"


async def test_untrusted_kite_keys_are_refused(math, dial, kontrol_pair, attacker_pair):
    legit = await dial(math, Authentication("kiteKey", kite_key(kontrol_pair, "carol")))
    cases = {
        "kiteKey: kontrol key is not trusted": kite_key(attacker_pair),
        "kiteKey: Invalid signature in kite key": kite_key(kontrol_pair, signer=attacker_pair),
        "kiteKey: token has no username": rsa_signed(
            RS256, {"iss": "kontrol", "kontrolKey": kontrol_pair.public}, kontrol_pair.private
        ),
    }
    for reason, key in cases.items():
        client = await dial(math, Authentication("kiteKey", key))
        with pytest.raises(AuthenticationError) as info:
            await client.tell("whoami")
        assert info.value.message == reason
        assert await legit.tell("whoami") == "carol"


async def test_kite_key_verification_is_cached(math, dial, kontrol_pair, monkeypatch):
    calls = []
    real = authenticators_module.verify_kite_key

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(authenticators_module, "verify_kite_key", counting)
    client = await dial(math, Authentication("kiteKey", kite_key(kontrol_pair)))
    for _ in range(3):
        assert await client.tell("whoami") == "alice"
    assert len(calls) == 1
    # a negative TTL disables the cache
    math.config.verify_ttl = -1
    math.authenticators["kiteKey"] = authenticators_module.KiteKeyAuthenticator(math)
    for _ in range(2):
        assert await client.tell("whoami") == "alice"
    assert len(calls) == 3


async def test_kontrol_style_trust_check(math, dial, kontrol_pair, attacker_pair):
    # Kontrol trusts every key in its key-pair storage, asked asynchronously
    asked = []

    async def in_storage(pem: str) -> bool:
        asked.append(pem)
        return pem == attacker_pair.public

    math.authenticators["kiteKey"] = authenticators_module.KiteKeyAuthenticator(math, in_storage)
    client = await dial(math, Authentication("kiteKey", kite_key(attacker_pair)))
    assert await client.tell("whoami") == "alice"
    client.auth = Authentication("kiteKey", kite_key(kontrol_pair))
    with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
        await client.tell("whoami")
    assert asked == [attacker_pair.public, kontrol_pair.public]
