"""The one place Kontrol imports the kite-auth-token plugin, with a clear error when missing."""

from __future__ import annotations

try:
    import kite_auth_token
    from kite_auth_token import compact
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "Kontrol needs the kite-auth-token plugin: pip install kitecore[kontrol]"
    ) from exc

__all__ = ["compact", "kite_auth_token"]
