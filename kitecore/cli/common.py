"""What the commands share: argument parsing and the CLI's own kite."""

from __future__ import annotations

import json
import sys
from typing import Any

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.protocol.envelope import Authentication


def parse_argument(text: str) -> Any:
    """A command-line argument as JSON (``4``, ``"x"``, ``[1,2]``), else as a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def cli_kite(config: Config | None = None) -> Kite:
    """The kite the command line speaks as (identity and kite.key from the environment)."""
    return Kite("kite-cli", "0.1.0", config=Config.from_env() if config is None else config)


def kite_key_auth(config: Config) -> Authentication | None:
    """kiteKey credentials when this machine has a kite.key, else none."""
    return Authentication("kiteKey", config.kite_key) if config.kite_key else None


def fail(command: str, message: object, code: int = 1) -> int:
    """Print ``kite COMMAND: message`` on stderr and return ``code``."""
    print(f"kite {command}: {message}", file=sys.stderr)
    return code
