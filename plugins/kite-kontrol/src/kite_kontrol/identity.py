"""Who a Kontrol is: its username, kept in its data directory (``DATA_DIR/kontrol.json``).

The username is the ``iss`` of every kite.key and token Kontrol signs, so it must not change
while those are in use. It is fixed on first start (from the config, default ``kontrol``) and
read back on every later start; a different username asked for later is refused. Kontrol never
takes its identity from the kite.key in ``$KITE_HOME``: that file is a user's (``kite register``
writes it there), and a Kontrol started in the same home would otherwise become that user.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from kitecore.config import Config

__all__ = ["DEFAULT_USERNAME", "IDENTITY_FILE", "IdentityFile", "kontrol_config"]

logger = logging.getLogger(__name__)

IDENTITY_FILE = "kontrol.json"
#: Kontrol's username when none is given on first start.
DEFAULT_USERNAME = "kontrol"
#: ``Config``'s username when nothing set one.
_UNSET = Config.username


def kontrol_config(environ: Mapping[str, str] | None = None) -> Config:
    """Defaults and the ``KITE_*`` variables, but never the kite.key in ``$KITE_HOME``."""
    config = Config()
    config.read_environment(os.environ if environ is None else environ)
    return config


class IdentityFile:
    """The identity file in one Kontrol data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / IDENTITY_FILE

    def read(self) -> str | None:
        """The stored username, or ``None`` when the file does not exist yet."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read Kontrol's identity in {self.path}: {exc}") from None
        username = data.get("username") if isinstance(data, dict) else None
        if not isinstance(username, str) or not username:
            raise ValueError(f"{self.path} holds no username; restore it or remove it")
        return username

    def write(self, username: str) -> None:
        """Store ``username`` (atomically; the directory is created with mode 0700)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        try:
            tmp.write_text(json.dumps({"username": username}) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def resolve(self, requested: str | None, *, has_keys: bool = False) -> str:
        """Kontrol's username: the stored one; on first start ``requested`` (or
        :data:`DEFAULT_USERNAME`), which is then stored.

        ``ValueError`` when ``requested`` differs from the stored username (every kite.key this
        Kontrol issued names the stored one as its issuer), and when a data directory that
        already ``has_keys`` but no identity file (made before the file existed) is started
        without a username: guessing one would lock out every kite it signed for.
        """
        requested = requested if requested and requested != _UNSET else None
        stored = self.read()
        if stored is None:
            if requested is None and has_keys:
                raise ValueError(
                    f"{self.path.parent} holds a key pair but not Kontrol's username: start it "
                    "once with --username NAME (the issuer of the kite.keys it signed)"
                )
            username = requested or DEFAULT_USERNAME
            self.write(username)
            logger.info("Kontrol's username is %r (kept in %s)", username, self.path)
            return username
        if requested is not None and requested != stored:
            raise ValueError(
                f"the Kontrol in {self.path.parent} is {stored!r} (the issuer of every kite.key it "
                f"signed), not {requested!r}: start it with --username {stored}, or give another "
                "--data-dir for a new Kontrol"
            )
        return stored
