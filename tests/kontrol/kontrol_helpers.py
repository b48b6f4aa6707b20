"""Helpers shared by the Kontrol tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

import kite_auth_token
from kite_kontrol.server import Kontrol

from kitecore import Authentication
from kitecore.storage import KeyPairRecord

KONTROL_USER = "kontrol-admin"
SECRET = "s3cret-registration"


def kite_key(kontrol: Kontrol, username: str = "alice") -> Authentication:
    """kiteKey credentials for ``username`` issued by ``kontrol``."""
    return Authentication("kiteKey", kontrol.create_kite_key(username))


def foreign_kite_key(pair: KeyPairRecord, username: str = "alice", url: str = "") -> str:
    """A kite.key signed by a key pair Kontrol never stored."""
    return kite_auth_token.create_kite_key(
        username=username,
        issuer="evil",
        kontrol_url=url or "http://evil.example/kite",
        public_key=pair.public,
        private_key=pair.private,
    )
