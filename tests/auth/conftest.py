"""Fixtures for the kite-auth-token tests: key pairs made once per session and a fixed clock."""

from __future__ import annotations

import pytest
from auth_forge import NOW
from kite_auth_token import KeyPair


@pytest.fixture(scope="session")
def kontrol_pair() -> KeyPair:
    """The key pair of the Kontrol every verifier in these tests trusts."""
    return KeyPair.generate(id="kontrol-pair")


@pytest.fixture(scope="session")
def attacker_pair() -> KeyPair:
    """A key pair nobody trusts."""
    return KeyPair.generate(id="attacker-pair")


@pytest.fixture
def now() -> int:
    """The fixed test clock."""
    return NOW
