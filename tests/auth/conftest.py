"""Fixtures for the kite-auth-token tests: key pairs made once per session and a fixed clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    import kite_auth_token  # noqa: F401
except ImportError:  # the plugin is not installed into this environment: test its source tree
    _SRC = Path(__file__).resolve().parents[2] / "plugins" / "kite-auth-token" / "src"
    sys.path.insert(0, str(_SRC))

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
