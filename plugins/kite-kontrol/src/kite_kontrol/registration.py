"""Registering a kite, shared by the ``register`` method and ``POST /register``.

Validates the URL and the identity (username forced to the kite.key's ``sub``), stores the
registration under the key pair that signed the kite.key, and re-signs the kite.key with the
current pair when that pair was retired (protocol.md §6.4, key rotation).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kitecore.protocol.errors import GenericError
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import (
    IdConflictError,
    InvalidInputError,
    RegisterValue,
    Storage,
    StorageError,
    validate_kite,
)

from ._tokenlib import compact
from .auth import VerifiedKiteKey
from .keyring import Keyring
from .limits import KiteQuota, check_identity_sizes, check_url_size
from .settings import KontrolSettings

__all__ = ["Registration", "check_register_url", "register_kite", "url_argument"]

logger = logging.getLogger(__name__)

_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_WHITESPACE = re.compile(r"\s")  # the characters str.isspace() accepts


@dataclass(frozen=True, slots=True)
class Registration:
    """A stored registration, and the re-signed kite.key if the kite needs a new one."""

    kite: KiteIdentity
    value: RegisterValue
    public_key: str = ""
    kite_key: str = ""

    def result(self, heartbeat_interval: float) -> dict[str, Any]:
        """The ``register`` answer: ``{"url", "heartbeatInterval"}`` (+ rotation fields)."""
        interval: float = heartbeat_interval
        if float(interval).is_integer():
            interval = int(interval)
        answer: dict[str, Any] = {"url": self.value.url, "heartbeatInterval": interval}
        if self.kite_key:
            answer["publicKey"] = self.public_key
            answer["kiteKey"] = self.kite_key
        return answer


def url_argument(value: Any) -> str:
    """The URL from ``register``'s argument: Go's ``{"url": ...}`` or kite.js's bare string."""
    if isinstance(value, dict):
        value = value.get("url")
    if value is None or value == "":
        raise GenericError("empty url")
    if not isinstance(value, str):
        raise GenericError(f"invalid register URL: not a string: {value!r}")
    return value


def check_register_url(url: str) -> None:
    """Raise ``invalid register URL: ...`` unless ``url`` is an absolute http(s)/ws(s) URL."""
    if not url:
        raise GenericError("empty url")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise GenericError(f"invalid register URL: {url}: {exc}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise GenericError(f"invalid register URL: {url}: scheme must be http, https, ws or wss")
    if not parts.hostname:
        raise GenericError(f"invalid register URL: {url}: no host")
    if port == 0 or _WHITESPACE.search(url):
        raise GenericError(f"invalid register URL: {url}: bad port or whitespace")


def _resign(verified: VerifiedKiteKey, keyring: Keyring) -> str:
    """The same kite.key claims, ``kontrolKey`` replaced and signed with the current pair."""
    claims = dict(compact.decode_unverified(verified.token).claims)
    claims["kontrolKey"] = keyring.current.public
    return compact.sign(claims, keyring.current.private)


async def register_kite(
    *,
    storage: Storage,
    keyring: Keyring,
    settings: KontrolSettings,
    claimed: KiteIdentity | None,
    verified: VerifiedKiteKey,
    url: str,
    quota: KiteQuota | None = None,
) -> Registration:
    """Validate and store one registration; errors carry Go's messages.

    Sizes are checked first (``argumentError``), then ``quota`` (``requestLimitError``).
    """
    check_url_size(url, settings)
    check_register_url(url)
    if claimed is None:
        raise GenericError("Empty Kite field: name")
    kite = dataclasses.replace(claimed, username=verified.username)
    check_identity_sizes(kite, settings)
    try:
        validate_kite(kite)
    except InvalidInputError as exc:
        raise GenericError(str(exc)) from None
    if quota is not None:
        try:
            await quota.admit(kite, storage)
        except InvalidInputError as exc:
            raise GenericError(str(exc)) from None
        except StorageError as exc:
            logger.error("counting the kites of %s failed: %s", kite.username, exc)
            raise GenericError("internal error - register") from None
    pair = verified.pair
    public_key = kite_key = ""
    if pair.retired:
        kite_key = _resign(verified, keyring)
        public_key = keyring.current.public
        pair = keyring.current
    value = RegisterValue(url, pair.id)
    try:
        await storage.upsert(kite, value, ttl=settings.key_ttl)
    except IdConflictError as exc:
        raise GenericError(str(exc)) from None
    except InvalidInputError as exc:
        raise GenericError(str(exc)) from None
    except StorageError as exc:
        logger.error("storage upsert of %s failed: %s", kite, exc)
        raise GenericError("internal error - register") from None
    logger.info("kite registered: %s at %s", kite, url)
    return Registration(kite, value, public_key, kite_key)
