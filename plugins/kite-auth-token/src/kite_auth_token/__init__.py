"""kite-auth-token: kiteKey and token authentication for kite for Python.

This package holds the pure, socket-free layer: RSA key pairs, kite.key creation/verification and
file handling, RS256 token minting/verification with Go-compatible reasons, audiences, Kontrol's
token cache. The authenticators kites run live in :mod:`kite_auth_token.authenticators`,
registered by the plugin :mod:`kite_auth_token.plugin`. (The client's renewal schedule is the
core's :class:`kitecore.discovery.TokenRenewer`.)
"""

from __future__ import annotations

from .audience import (
    ROOT_AUDIENCE,
    KiteIdentity,
    audience_for_query,
    audience_matches,
    check_audience,
)
from .errors import KeyFormatError, KiteKeyNotFoundError, TokenError
from .keyfile import kite_home, kite_key_path, read_kite_key, write_kite_key
from .keys import (
    KeyPair,
    check_key_pair,
    generate_key_pair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    same_public_key,
)
from .kitekey import (
    KiteKeyClaims,
    TrustPolicy,
    create_kite_key,
    unverified_kontrol_key,
    verify_kite_key,
)
from .minting import TokenMinter
from .tokens import TOKEN_LEEWAY, TOKEN_TTL, TokenClaims, mint_token, verify_token

__version__ = "0.1.0"

__all__ = [
    "ROOT_AUDIENCE",
    "TOKEN_LEEWAY",
    "TOKEN_TTL",
    "KeyFormatError",
    "KeyPair",
    "KiteIdentity",
    "KiteKeyClaims",
    "KiteKeyNotFoundError",
    "TokenClaims",
    "TokenError",
    "TokenMinter",
    "TrustPolicy",
    "audience_for_query",
    "audience_matches",
    "check_audience",
    "check_key_pair",
    "create_kite_key",
    "generate_key_pair",
    "key_fingerprint",
    "kite_home",
    "kite_key_path",
    "load_private_key",
    "load_public_key",
    "mint_token",
    "read_kite_key",
    "same_public_key",
    "unverified_kontrol_key",
    "verify_kite_key",
    "verify_token",
    "write_kite_key",
]
