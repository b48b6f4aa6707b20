"""Replacing a kite.key without clobbering someone else's (sans-IO checks, plus a backup).

A kite.key says who a machine is (``sub``) and which Kontrol vouches for it (``iss``,
``kontrolURL``, ``kontrolKey``). ``kite register`` may refresh the key of the same user from the
same Kontrol freely, but a key of another user (or Kontrol's own, written by ``--initial``) or
from another Kontrol is only replaced when asked to (``--force``), and then kept as a backup.
"""

from __future__ import annotations

import os
from pathlib import Path

from kitecore.discovery.claims import MalformedTokenError, unverified_claims

__all__ = ["backup_kite_key", "read_existing_key", "replace_conflict"]


def read_existing_key(path: str | os.PathLike[str]) -> str | None:
    """The text of the kite.key at ``path``: ``None`` when there is none, ``""`` when it cannot
    be read (an unreadable file still is not ours to clobber)."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""


def _owner(claims: dict[str, object]) -> str:
    who = claims.get("sub")
    if claims.get("sub") == claims.get("iss"):
        who = f"Kontrol {who}"
    return f"{who} (issued by {claims.get('iss')} at {claims.get('kontrolURL') or '?'})"


def replace_conflict(existing: str, *, username: str, new_key: str | None = None) -> str | None:
    """Why writing a kite.key for ``username`` (``new_key``, once known) over ``existing`` would
    overwrite someone else's; ``None`` when it is the same user's key from the same Kontrol.

    Before the new key is known only the username is compared; with ``new_key`` the issuer too
    (same ``iss`` and the same Kontrol URL or public key).
    """
    try:
        old = unverified_claims(existing)
    except MalformedTokenError:
        return "holds no readable kite.key"
    if old.get("sub") != username or old.get("sub") == old.get("iss"):
        return f"belongs to {_owner(old)}, not {username}"
    if new_key is None:
        return None
    new = unverified_claims(new_key)
    same_kontrol = old.get("iss") == new.get("iss") and (
        old.get("kontrolURL") == new.get("kontrolURL")
        or old.get("kontrolKey") == new.get("kontrolKey")
    )
    if not same_kontrol:
        return f"belongs to {_owner(old)}, another Kontrol"
    return None


def backup_kite_key(path: str | os.PathLike[str]) -> Path:
    """Move the kite.key at ``path`` to ``kite.key.bak`` (or ``.bak.1``, ``.bak.2``... if taken,
    so no earlier backup is lost); returns the backup's path."""
    source = Path(path)
    backup = source.with_name(f"{source.name}.bak")
    number = 0
    while backup.exists():
        number += 1
        backup = source.with_name(f"{source.name}.bak.{number}")
    os.replace(source, backup)
    return backup
