"""Kontrol's key pairs on disk, in its data directory.

Layout (the directory is created with mode 0700)::

    DATA_DIR/kontrol.key            current private key, PKCS#1 PEM, mode 0600
    DATA_DIR/kontrol.pub            current public key, PKIX PEM, mode 0644
    DATA_DIR/retired/<id>.key|.pub  pairs retired by rotation (kept so kite.keys they signed
                                    can still be recognised and re-signed after a restart)

A pair's id is derived from its public key (a UUID made of the first 128 bits of its SHA-256
fingerprint), so Kontrols started from copies of the same files agree on the id without talking.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from kitecore.storage import KeyPairRecord

from ._tokenlib import kite_auth_token

__all__ = ["KeyFiles", "key_id_for"]

logger = logging.getLogger(__name__)

PRIVATE_FILE = "kontrol.key"
PUBLIC_FILE = "kontrol.pub"
RETIRED_DIR = "retired"


def key_id_for(public_pem: str) -> str:
    """The stable id of a public key: a UUID built from its fingerprint."""
    return str(uuid.UUID(hex=kite_auth_token.key_fingerprint(public_pem)[:32]))


def new_key_pair() -> KeyPairRecord:
    """Generate a fresh RSA-2048 pair with its derived id."""
    public, private = kite_auth_token.generate_key_pair()
    return KeyPairRecord(key_id_for(public), public, private)


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically, the file created with ``mode`` from the start."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text.strip() + "\n")
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_pair(private_path: Path, public_path: Path) -> KeyPairRecord:
    private = private_path.read_text(encoding="ascii").strip()
    public = public_path.read_text(encoding="ascii").strip()
    kite_auth_token.check_key_pair(public, private)
    return KeyPairRecord(key_id_for(public), public, private)


class KeyFiles:
    """The key pairs kept in one Kontrol data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)

    @property
    def private_path(self) -> Path:
        return self.data_dir / PRIVATE_FILE

    @property
    def public_path(self) -> Path:
        return self.data_dir / PUBLIC_FILE

    def load_or_create(self) -> tuple[KeyPairRecord, bool]:
        """The current pair, generated and saved on first run; ``(pair, created)``.

        Raises ``ValueError`` when the files exist but do not hold one RSA pair, and
        ``FileNotFoundError`` when only one of the two files exists.
        """
        have_private, have_public = self.private_path.exists(), self.public_path.exists()
        if have_private and have_public:
            return _read_pair(self.private_path, self.public_path), False
        if have_private or have_public:
            raise FileNotFoundError(
                f"{self.data_dir} holds only one of {PRIVATE_FILE} and {PUBLIC_FILE}; "
                "restore the other or remove both to start with a new key pair"
            )
        pair = new_key_pair()
        self._save_current(pair)
        logger.info("created Kontrol key pair %s in %s", pair.id, self.data_dir)
        return pair, True

    def retired(self) -> list[KeyPairRecord]:
        """The pairs retired by earlier rotations (unreadable ones are logged and skipped)."""
        folder = self.data_dir / RETIRED_DIR
        pairs = []
        for private_path in sorted(folder.glob("*.key")):
            try:
                pairs.append(_read_pair(private_path, private_path.with_suffix(".pub")))
            except (OSError, ValueError) as exc:
                logger.warning("skipping retired key %s: %s", private_path, exc)
        return pairs

    def rotate(self, new: KeyPairRecord) -> KeyPairRecord:
        """Make ``new`` the current pair; the old one moves to ``retired/``. Returns the old."""
        old, _ = self.load_or_create()
        folder = self.data_dir / RETIRED_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        _write(folder / f"{old.id}.key", old.private, 0o600)
        _write(folder / f"{old.id}.pub", old.public, 0o644)
        self._save_current(new)
        logger.info("rotated Kontrol key pair %s -> %s", old.id, new.id)
        return old

    def _save_current(self, pair: KeyPairRecord) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(self.private_path, pair.private, 0o600)
        _write(self.public_path, pair.public, 0o644)
