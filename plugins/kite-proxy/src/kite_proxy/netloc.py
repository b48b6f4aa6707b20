"""Public addresses of the proxies."""

from __future__ import annotations

__all__ = ["public_netloc"]


def public_netloc(host: str, port: int, default_port: int = 80) -> str:
    """``host:port`` (``[v6]:port``), the port left out when it is ``default_port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port in (0, default_port) else f"{host}:{port}"
