"""The one place Kontrol imports the kite-auth-token plugin (a dependency of kite-kontrol)."""

from __future__ import annotations

import kite_auth_token
from kite_auth_token import compact

__all__ = ["compact", "kite_auth_token"]
