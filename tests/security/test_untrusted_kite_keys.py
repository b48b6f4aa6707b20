"""kite.keys Kontrol must not accept: forged from a real one, or issued by an untrusted Kontrol.

Mallory holds a real kite.key of her own. Rewriting it (to act as Bob, or to get past the
signature check) must get her nowhere with Kontrol's ``register``, ``getKites``, ``getToken`` and
``getKey``: each is refused with an ``authenticationError``, nothing is stored, and Bob's
registered kite keeps being found and served. A whole kite whose kite.key comes from an
untrusted Kontrol (Go's TestRegisterDenyEvil, here through the kite-side ``KontrolClient``)
never gets registered, while the legitimate kites are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import kite_auth_token
import pytest
from security_helpers import claims_of, hs256_signed, resigned, tampered, unsigned

from kitecore import Authentication, AuthenticationError, GenericError, Query
from kitecore.storage import KeyPairRecord

pytestmark = pytest.mark.anyio

Forgery = Callable[[str, KeyPairRecord, KeyPairRecord], str]

#: name -> (forge(mallory's real kite.key, kontrol_pair, evil_pair), the refusal message)
FORGERIES: dict[str, tuple[Forgery, str]] = {
    "subject rewritten to bob, signature kept": (
        lambda key, *_: tampered(key, sub="bob"),
        "kiteKey: Invalid signature in kite key",
    ),
    "re-signed by another key, Kontrol's key still embedded": (
        lambda key, _pair, evil: resigned(key, evil.private, sub="bob"),
        "kiteKey: Invalid signature in kite key",
    ),
    "alg none": (
        lambda key, *_: unsigned({**claims_of(key), "sub": "bob"}),
        "kiteKey: invalid signing method",
    ),
    "HS256 signed with Kontrol's public key": (
        lambda key, pair, _evil: hs256_signed(
            {**claims_of(key), "sub": "bob"}, pair.public.encode()
        ),
        "kiteKey: invalid signing method",
    ),
    "no kontrolKey claim": (
        lambda key, _pair, evil: resigned(key, evil.private, kontrolKey=None),
        "kiteKey: no kontrol key found",
    ),
    "a token instead of a kite.key": (
        lambda key, pair, _evil: kite_auth_token.mint_token(
            issuer="kontrol-admin", subject="bob", audience="/", private_key=pair.private
        ),
        "kiteKey: no kontrol key found",
    ),
}

METHODS = [
    ("register", lambda kite: [{"url": "http://127.0.0.1:1/kite"}]),
    ("getKites", lambda kite: [{"query": {"username": "bob"}}]),
    ("getToken", lambda kite: [kite.identity.to_wire()]),
    ("getKey", lambda kite: []),
]


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_kite_key_gets_nothing_from_kontrol(
    name, kontrol, make_kite, kontrol_pair, evil_pair
):
    bob = await make_kite("math", kontrol.create_kite_key("bob"))
    mallory = await make_kite("spy", kontrol.create_kite_key("mallory"), register=False)
    forge, message = FORGERIES[name]
    forged = forge(mallory.config.kite_key, kontrol_pair, evil_pair)
    async with mallory.new_client(kontrol.url, auth=Authentication("kiteKey", forged)) as client:
        for method, args in METHODS:
            with pytest.raises(AuthenticationError) as info:
                await client.tell(method, *args(bob))
            assert info.value.message == message, method
    # nothing of Mallory's was stored, Bob's registration is intact and Bob is still served
    assert await kontrol.storage.get(Query(id=mallory.id)) == []
    assert [r.url for r in await kontrol.storage.get(Query(username="bob"))] == [bob.url]
    caller = await make_kite("caller", kontrol.create_kite_key("alice"), register=False)
    [math] = await caller.get_kites(username="bob", name="math")
    async with math:
        assert await math.tell("whoami") == "alice"


async def test_kite_from_an_untrusted_kontrol_never_registers(kontrol, make_kite, evil_pair):
    """Go's TestRegisterDenyEvil through the KontrolClient: the evil kite keeps failing."""
    bob = await make_kite("math", kontrol.create_kite_key("bob"))
    evil_key = kite_auth_token.create_kite_key(
        username="bob",  # claims to be Bob
        issuer="kontrol-admin",  # and to come from our Kontrol, at its URL
        kontrol_url=kontrol.url,
        public_key=evil_pair.public,
        private_key=evil_pair.private,
    )
    evil = await make_kite("math", evil_key, register=False)
    assert evil.config.kontrol_url == kontrol.url
    await evil.register_forever()
    with anyio.move_on_after(1.0):
        await evil.kontrol_client.registered.wait()
    assert not evil.kontrol_client.registered.is_set()
    with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
        await evil.register()
    with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
        await evil.get_kites(username="bob")
    with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
        await evil.get_token(bob.identity)
    with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
        await evil.get_key()
    async with evil.new_client(kontrol.url) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("registerMachine", {"username": "bob", "secret": "guess"})
        assert info.value.message == "cannot authenticate user: wrong registration secret"
    # Kontrol knows only the real Bob, and hands out tokens for him alone
    assert [r.url for r in await kontrol.storage.get(Query(username="bob"))] == [bob.url]
    caller = await make_kite("caller", kontrol.create_kite_key("alice"), register=False)
    [math] = await caller.get_kites(username="bob", name="math")
    assert math.url == bob.url
    async with math:
        assert await math.tell("whoami") == "alice"
    # and the evil kite's kite.key opens no door on Bob's kite either
    async with evil.new_client(bob.url, auth=Authentication("kiteKey", evil_key)) as client:
        with pytest.raises(AuthenticationError, match="kiteKey: kontrol key is not trusted"):
            await client.tell("whoami")
