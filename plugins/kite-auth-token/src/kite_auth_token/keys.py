"""RSA key pairs for Kontrol: generation, PEM loading and a stable fingerprint.

PEM formats match what Go's jwt-go v3 reads: public keys as PKIX ``PUBLIC KEY`` (PKCS#1
``RSA PUBLIC KEY`` is accepted on input), private keys as PKCS#1 ``RSA PRIVATE KEY`` (PKCS#8 is
accepted on input).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from .errors import KeyFormatError

__all__ = [
    "KEY_SIZE",
    "KeyPair",
    "check_key_pair",
    "generate_key_pair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "same_public_key",
]

logger = logging.getLogger(__name__)

#: RSA modulus size for generated keys (what Kontrol deployments use).
KEY_SIZE = 2048


def generate_key_pair(key_size: int = KEY_SIZE) -> tuple[str, str]:
    """Generate a new RSA key pair and return ``(public_pem, private_pem)`` as text."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    logger.debug("generated RSA-%d key pair %s", key_size, key_fingerprint(public_pem)[:16])
    return public_pem.strip(), private_pem.strip()


@functools.lru_cache(maxsize=128)
def load_public_key(pem: str) -> RSAKey:
    """Load an RSA public key from PEM text; raise :class:`KeyFormatError` if it is not one.

    Results are cached by PEM text: verifying a token does not re-parse the same key each time.
    """
    key = _import_rsa(pem, "public")
    if key.is_private:
        raise KeyFormatError("expected an RSA public key, got a private key")
    return key


@functools.lru_cache(maxsize=32)
def load_private_key(pem: str) -> RSAKey:
    """Load an RSA private key from PEM text; raise :class:`KeyFormatError` if it is not one."""
    key = _import_rsa(pem, "private")
    if not key.is_private:
        raise KeyFormatError("expected an RSA private key, got a public key")
    return key


def key_fingerprint(public_pem: str) -> str:
    """Return a stable id for a public key: SHA-256 (hex) of its DER SubjectPublicKeyInfo.

    Two PEM texts of the same key (different line wrapping, PKCS#1 vs PKIX) get the same id.
    """
    der = load_public_key(public_pem).as_der(private=False)
    return hashlib.sha256(der).hexdigest()


def same_public_key(a: str, b: str) -> bool:
    """Tell whether two PEM texts hold the same RSA public key (False if either is unreadable)."""
    try:
        return key_fingerprint(a) == key_fingerprint(b)
    except KeyFormatError:
        return False


@dataclass(frozen=True)
class KeyPair:
    """A Kontrol signing key pair as stored by Kontrol's key-pair storage.

    ``id`` is what kites register with (``key_id``) and what tokens are cached under. PEM texts are
    stripped of surrounding whitespace, as Go's ``AddKeyPair`` does.
    """

    public: str
    private: str = field(repr=False)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", self.public.strip())
        object.__setattr__(self, "private", self.private.strip())
        if not self.id:
            object.__setattr__(self, "id", str(uuid.uuid4()))

    @classmethod
    def generate(cls, id: str | None = None, key_size: int = KEY_SIZE) -> KeyPair:
        """Generate a fresh pair (random UUID id unless ``id`` is given)."""
        public, private = generate_key_pair(key_size)
        return cls(public=public, private=private, id=id or str(uuid.uuid4()))

    def check(self) -> None:
        """Raise :class:`KeyFormatError` unless both PEMs load and belong to each other."""
        check_key_pair(self.public, self.private)

    @property
    def fingerprint(self) -> str:
        """:func:`key_fingerprint` of the public half."""
        return key_fingerprint(self.public)


def check_key_pair(public_pem: str, private_pem: str) -> None:
    """Raise :class:`KeyFormatError` unless the two PEMs load and form one RSA key pair."""
    public = load_public_key(public_pem.strip())
    private = load_private_key(private_pem.strip())
    if private.as_der(private=False) != public.as_der(private=False):
        raise KeyFormatError("public key does not belong to the private key")


def _import_rsa(pem: str, kind: str) -> RSAKey:
    if not isinstance(pem, str) or not pem.strip():
        raise KeyFormatError(f"empty or non-text RSA {kind} key")
    try:
        return RSAKey.import_key(pem.strip())
    except (JoseError, ValueError, TypeError) as err:
        raise KeyFormatError(f"not a PEM-encoded RSA {kind} key: {err}") from err
