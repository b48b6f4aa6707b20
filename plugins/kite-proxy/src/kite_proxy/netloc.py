"""Public addresses of the proxies."""

from __future__ import annotations

from kitecore import Kite

__all__ = ["proxy_netloc", "proxy_scheme", "public_netloc"]


def public_netloc(host: str, port: int, default_port: int = 80) -> str:
    """``host:port`` (``[v6]:port``), the port left out when it is ``default_port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port in (0, default_port) else f"{host}:{port}"


def proxy_scheme(kite: Kite, scheme: str | None) -> str:
    """A proxy's public scheme: ``scheme`` when given, else ``https`` when ``kite`` serves TLS
    (its config's ``tls_cert_file``) and ``http`` when not."""
    return scheme or ("https" if kite.config.tls_cert_file else "http")


def proxy_netloc(kite: Kite, public_host: str, public_port: int, scheme: str) -> str:
    """``host:port`` callers use to reach a proxy served by ``kite``: ``public_host`` and
    ``public_port`` when given, else where it listens (127.0.0.1 for every address); the port
    left out when it is the scheme's default."""
    host = public_host or kite.config.ip or "127.0.0.1"
    if host == "0.0.0.0":
        host = "127.0.0.1"
    port = public_port or kite.port
    return public_netloc(host, port, 443 if scheme == "https" else 80)
