"""The kite.key file on disk (protocol.md §6.1): ``$KITE_HOME/kite.key``, default ``~/.kite``.

Written the way Go's ``kitekey.Write`` does: directory mode 0700, the old file removed first (a
0400 file cannot be overwritten in place), the new one created with mode 0400.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import KiteKeyNotFoundError

__all__ = ["kite_home", "kite_key_path", "read_kite_key", "write_kite_key"]

logger = logging.getLogger(__name__)

KITE_KEY_FILE = "kite.key"


def kite_home(environ: Mapping[str, str] | None = None) -> Path:
    """The kite home directory: ``$KITE_HOME`` if set and non-empty, else ``~/.kite``."""
    env = os.environ if environ is None else environ
    home = env.get("KITE_HOME", "")
    return Path(home) if home else Path.home() / ".kite"


def kite_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the kite.key lives: ``kite_home() / "kite.key"``."""
    return kite_home(environ) / KITE_KEY_FILE


def read_kite_key(path: str | os.PathLike[str] | None = None) -> str:
    """Return the kite.key JWT from ``path`` (default :func:`kite_key_path`), whitespace trimmed.

    Raises :class:`KiteKeyNotFoundError` if the file is missing or empty; the token itself is not
    checked here (use :func:`~kite_auth_token.kitekey.verify_kite_key`).
    """
    key_path = Path(path) if path is not None else kite_key_path()
    try:
        text = key_path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise KiteKeyNotFoundError(
            f"kite.key not found at {key_path} (register with Kontrol, or set KITE_HOME)"
        ) from err
    if not text:
        raise KiteKeyNotFoundError(f"kite.key at {key_path} is empty")
    return text


def write_kite_key(token: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``token`` as the kite.key (default :func:`kite_key_path`) and return the path.

    Creates missing directories with mode 0700, removes the previous file, then creates the new
    one with mode 0400 (owner read-only).
    """
    token = token.strip()
    if not token:
        raise ValueError("refusing to write an empty kite.key")
    key_path = Path(path) if path is not None else kite_key_path()
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token)
    logger.info("wrote kite.key to %s", key_path)
    return key_path
