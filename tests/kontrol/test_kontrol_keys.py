"""Key pairs: rotation and re-signing, retired keys, the data directory, untrusted Kontrols."""

from __future__ import annotations

import stat

import pytest
from kite_auth_token import verify_kite_key, verify_token
from kite_kontrol.keyfiles import KeyFiles
from kontrol_helpers import KONTROL_USER, foreign_kite_key, kite_key

from kitecore import Authentication, AuthenticationError, GenericError, Query

pytestmark = pytest.mark.anyio


async def test_rotation_resigns_kite_keys(kontrol, make_kite, kontrol_pair, second_pair):
    old_key = kontrol.create_kite_key("alice")
    old_claims = verify_kite_key(old_key, trust=kontrol_pair.public)
    await kontrol.rotate_key(second_pair)
    assert kontrol.public_key == second_pair.public
    kite = make_kite()
    async with kite:
        async with kite.new_client(kontrol.url, auth=Authentication("kiteKey", old_key)) as client:
            result = await client.tell("register", {"url": kite.url})
            assert result["publicKey"] == second_pair.public
            new_claims = verify_kite_key(result["kiteKey"], trust=second_pair.public)
            assert (new_claims.subject, new_claims.id, new_claims.issuer) == (
                old_claims.subject,
                old_claims.id,
                old_claims.issuer,
            )
            assert await client.tell("getKey") == second_pair.public
            answer = await client.tell("getKites", {"query": {"id": kite.id}})
        (entry,) = answer["kites"]
        assert entry["keyId"] == second_pair.id
        verify_token(
            entry["token"], public_key=second_pair.public, issuer=KONTROL_USER, kite=kite.identity
        )
        new_auth = Authentication("kiteKey", result["kiteKey"])
        async with kite.new_client(kontrol.url, auth=new_auth) as client:
            again = await client.tell("register", {"url": kite.url})
            assert "kiteKey" not in again and "publicKey" not in again
    with pytest.raises(Exception, match="key pair is removed"):
        await kontrol.storage.get_key_by_id(kontrol_pair.id)


async def test_kite_registered_with_retired_pair_gets_tokens_from_current(
    kontrol, make_kite, second_pair
):
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        await kontrol.rotate_key(second_pair)
        token = await client.tell("getToken", {"id": kite.id})
    verify_token(token, public_key=second_pair.public, issuer=KONTROL_USER, kite=kite.identity)


async def test_register_deny_evil(kontrol, make_kite, evil_pair):
    """Go's TestRegisterDenyEvil: a kite.key from an untrusted Kontrol gets nothing."""
    kite = make_kite()
    evil = Authentication("kiteKey", foreign_kite_key(evil_pair, url=kontrol.url))
    async with kite, kite.new_client(kontrol.url, auth=evil) as client:
        for method, args in [
            ("register", [{"url": kite.url}]),
            ("getKites", [{"query": {"username": "alice"}}]),
            ("getToken", [kontrol.identity.to_wire()]),
            ("getKey", []),
        ]:
            with pytest.raises(AuthenticationError) as info:
                await client.tell(method, *args)
            assert info.value.message == "kiteKey: kontrol key is not trusted"
        with pytest.raises(GenericError) as info:
            await client.tell("registerMachine", {"secret": "guess"})
        assert info.value.message == "cannot authenticate user: wrong registration secret"
    assert await kontrol.storage.get(Query(username="alice")) == []


async def test_data_dir_key_pair_survives_restart(make_kontrol, make_kite, tmp_path):
    data_dir = tmp_path / "kontrol-data"
    first = await make_kontrol(key_pair=None, data_dir=data_dir)
    files = KeyFiles(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.private_path.stat().st_mode) == 0o600
    key = first.create_kite_key("alice")
    first_id = first.keyring.current.id
    new_pair = await first.rotate_key()
    assert (data_dir / "retired" / f"{first_id}.key").exists()
    assert files.load_or_create()[0].id == new_pair.id

    # a new Kontrol (with a fresh memory storage) from the same directory
    second = await make_kontrol(key_pair=None, data_dir=data_dir)
    assert second.keyring.current.id == new_pair.id
    kite = make_kite()
    async with kite, kite.new_client(second.url, auth=Authentication("kiteKey", key)) as client:
        result = await client.tell("register", {"url": kite.url})
    assert result["publicKey"] == new_pair.public  # the retired key was remembered, re-signed
    assert verify_kite_key(result["kiteKey"], trust=new_pair.public).subject == "alice"


def test_key_files_refuse_half_a_pair(tmp_path):
    files = KeyFiles(tmp_path)
    files.load_or_create()
    files.public_path.unlink()
    with pytest.raises(FileNotFoundError, match="only one of"):
        files.load_or_create()
