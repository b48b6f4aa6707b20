"""The kite.key file on disk (protocol.md §6.1): ``$KITE_HOME/kite.key``, default ``~/.kite``.

Locating and writing the file are the core's (:mod:`kitecore.config`); this module re-exports
them beside :func:`read_kite_key`, which insists on a key being there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kitecore.config import kite_home, kite_key_path, write_kite_key

from .errors import KiteKeyNotFoundError

__all__ = ["kite_home", "kite_key_path", "read_kite_key", "write_kite_key"]

logger = logging.getLogger(__name__)


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
