"""Config.from_env reads the kite.key in KITE_HOME (protocol.md §6.1, §9)."""

from __future__ import annotations

import logging

import pytest
from kite_auth_token import KeyPair, create_kite_key, write_kite_key

from kitecore import Config, Kite
from kitecore.plugins import load_plugins
from kitecore.testing import CORE_PLUGINS


@pytest.fixture
def kite_key(kontrol_pair: KeyPair) -> str:
    return create_kite_key(
        username="alice",
        issuer="koding",
        kontrol_url="http://kontrol.example.com:4000/kite",
        public_key=kontrol_pair.public,
        private_key=kontrol_pair.private,
        jti="9f3c-uuid",
    )


def test_from_env_reads_the_kite_key(tmp_path, kite_key, kontrol_pair):
    write_kite_key(kite_key, tmp_path / "kite.key")
    config = Config.from_env({"KITE_HOME": str(tmp_path)})
    assert config.kite_key == kite_key
    assert config.username == "alice"
    assert config.kontrol_user == "koding"
    assert config.kontrol_url == "http://kontrol.example.com:4000/kite"
    assert config.kontrol_key == kontrol_pair.public
    assert config.id == "9f3c-uuid"


def test_environment_variables_override_the_kite_key(tmp_path, kite_key):
    write_kite_key(kite_key, tmp_path / "kite.key")
    config = Config.from_env(
        {"KITE_HOME": str(tmp_path), "KITE_USERNAME": "bob", "KITE_KONTROL_URL": "http://k/kite"}
    )
    assert (config.username, config.kontrol_url, config.kontrol_user) == (
        "bob",
        "http://k/kite",
        "koding",
    )


def test_a_missing_kite_key_is_fine(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        config = Config.from_env({"KITE_HOME": str(tmp_path / "nowhere")})
    assert config == Config()
    assert caplog.records == []


@pytest.mark.parametrize(
    "content",
    ["garbage", "a.!!!.c", "a.bnVsbA.c", "e30.e30.e30"],  # e30 = {} : no sub, no kontrolKey
)
def test_a_corrupt_kite_key_is_a_warning(tmp_path, caplog, content):
    (tmp_path / "kite.key").write_text(content)
    with caplog.at_level(logging.WARNING, logger="kitecore.config"):
        config = Config.from_env({"KITE_HOME": str(tmp_path)})
    assert config == Config()
    [record] = caplog.records
    assert "is corrupt, ignoring it" in record.getMessage()
    assert str(tmp_path / "kite.key") in record.getMessage()


def test_a_kite_takes_its_username_from_the_kite_key(tmp_path, kite_key, monkeypatch):
    write_kite_key(kite_key, tmp_path / "kite.key")
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    monkeypatch.delenv("KITE_USERNAME", raising=False)
    kite = Kite("math", "1.0.0", plugins=load_plugins(names=CORE_PLUGINS))
    assert kite.identity.username == "alice"
    assert kite.kontrol_client.url == "http://kontrol.example.com:4000/kite"
