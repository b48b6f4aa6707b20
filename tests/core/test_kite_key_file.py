"""Replacing a kite.key safely (kitecore.discovery.keyfile) and the registration secret's
environment variable (kitecore.discovery.machine), without Kontrol or crypto."""

from __future__ import annotations

import base64
import json
import stat

from kitecore.discovery.keyfile import backup_kite_key, read_existing_key, replace_conflict
from kitecore.discovery.machine import registration_secret_from_env


def jwt(**claims: str) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


ALICE = jwt(sub="alice", iss="kontrol", kontrolURL="http://k:4000/kite", kontrolKey="K1")


def test_same_user_same_kontrol_may_be_replaced():
    assert replace_conflict(ALICE, username="alice") is None
    rotated = jwt(sub="alice", iss="kontrol", kontrolURL="http://k:4000/kite", kontrolKey="K2")
    assert replace_conflict(ALICE, username="alice", new_key=rotated) is None
    moved = jwt(sub="alice", iss="kontrol", kontrolURL="http://k2:4000/kite", kontrolKey="K1")
    assert replace_conflict(ALICE, username="alice", new_key=moved) is None


def test_another_user_kontrol_or_garbage_is_a_conflict():
    assert "belongs to alice" in replace_conflict(ALICE, username="bob")
    own = jwt(sub="admin", iss="admin", kontrolURL="http://k:4000/kite", kontrolKey="K1")
    assert "belongs to Kontrol admin" in replace_conflict(own, username="admin")
    other = jwt(sub="alice", iss="kontrol", kontrolURL="http://x:4000/kite", kontrolKey="X")
    assert "another Kontrol" in replace_conflict(ALICE, username="alice", new_key=other)
    assert replace_conflict("not a jwt", username="alice") == "holds no readable kite.key"
    assert replace_conflict("", username="alice") == "holds no readable kite.key"


def test_backups_never_overwrite_each_other(tmp_path):
    path = tmp_path / "kite.key"
    assert read_existing_key(path) is None
    for n in range(3):
        path.write_text(f"key {n}")
        path.chmod(0o400)
        backup_kite_key(path)
    assert not path.exists()
    names = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert names == {"kite.key.bak": "key 0", "kite.key.bak.1": "key 1", "kite.key.bak.2": "key 2"}
    assert stat.S_IMODE((tmp_path / "kite.key.bak").stat().st_mode) == 0o400


def test_one_secret_variable_and_its_alias():
    assert registration_secret_from_env({}) is None
    assert registration_secret_from_env({"KITE_REGISTRATION_SECRET": "a"}) == "a"
    assert registration_secret_from_env({"KONTROL_REGISTRATION_SECRET": "b"}) == "b"
    both = {"KITE_REGISTRATION_SECRET": "a", "KONTROL_REGISTRATION_SECRET": "b"}
    assert registration_secret_from_env(both) == "a"
    assert registration_secret_from_env({"KITE_REGISTRATION_SECRET": ""}) is None
