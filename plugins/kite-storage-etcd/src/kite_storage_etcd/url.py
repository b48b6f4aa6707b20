"""Parsing ``etcd://host:2379[,host:port...]/prefix[?timeout=5]`` storage URLs.

* Endpoints: one or more ``host[:port]`` separated by commas (port 2379 by default; IPv6
  addresses in brackets, ``[::1]:2379``). The storage fails over between them.
* Prefix: the URL path (default ``/kite``); every key the storage writes lives under it, so
  several registries can share one etcd cluster.
* ``timeout``: seconds one storage operation may take in all, failovers included (default 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from kitecore.storage import InvalidInputError

__all__ = ["DEFAULT_PORT", "DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "EtcdURL", "parse_etcd_url"]

DEFAULT_PORT = 2379
DEFAULT_PREFIX = "/kite"
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class EtcdURL:
    """A parsed etcd storage URL."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT

    def __str__(self) -> str:
        hosts = ",".join(_join_host_port(host, port) for host, port in self.endpoints)
        return f"etcd://{hosts}{self.prefix}?timeout={self.timeout:g}"


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint(text: str, url: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInputError(f"bad etcd endpoint {text!r} in {url!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise InvalidInputError(f"empty etcd host in {url!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInputError(f"bad etcd port {port_text!r} in {url!r}")
    return host, int(port_text)


def parse_etcd_url(url: str) -> EtcdURL:
    """Parse an ``etcd://`` URL; raise :class:`InvalidInputError` with the reason if malformed."""
    if not isinstance(url, str):
        raise InvalidInputError(f"an etcd URL is a string, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise InvalidInputError(f"not an etcd storage URL: {url!r} (want etcd://host:2379/prefix)")
    netloc = parts.netloc
    if "@" in netloc:
        raise InvalidInputError("etcd user names and passwords are not supported yet")
    if not netloc:
        raise InvalidInputError(f"no etcd endpoint in {url!r} (want etcd://host:2379/prefix)")
    endpoints = tuple(_endpoint(item, url) for item in netloc.split(","))
    prefix = unquote(parts.path).rstrip("/") or DEFAULT_PREFIX
    if "//" in prefix:
        raise InvalidInputError(f"empty segment in etcd key prefix {prefix!r}")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - {"timeout"}
    if unknown:
        raise InvalidInputError(f"unknown etcd URL option(s): {', '.join(sorted(unknown))}")
    timeout = DEFAULT_TIMEOUT
    if "timeout" in options:
        try:
            timeout = float(options["timeout"][-1])
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise InvalidInputError(f"etcd timeout must be a positive number: {url!r}")
    return EtcdURL(endpoints, prefix, timeout)
