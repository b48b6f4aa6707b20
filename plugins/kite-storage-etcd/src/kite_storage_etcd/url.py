"""Parsing ``etcd[s]://[user[:password]@]host:2379[,host:port...]/prefix[?options]`` storage URLs.

* Endpoints: one or more ``host[:port]`` separated by commas (port 2379 by default; IPv6
  addresses in brackets, ``[::1]:2379``). The storage fails over between them.
* Prefix: the URL path (default ``/kite``); every key the storage writes lives under it, so
  several registries can share one etcd cluster.
* ``timeout``: seconds one storage operation may take in all, failovers included (default 5).
* ``cache``: ``on`` (the default) serves queries from a local cache kept up by an etcd watch,
  ``off`` reads etcd for every query (:mod:`kite_storage_etcd.cache`). Without the option,
  ``$KITE_ETCD_CACHE`` (``on``/``off``) decides.
* ``etcds://``: TLS. The server's certificate is verified against the system's CAs, or the
  CA certificates (PEM) in ``ca=FILE``; ``cert=FILE`` and ``key=FILE`` are a client certificate
  and its key (for etcd's ``--client-cert-auth``).
* ``user:password@``: etcd user/password authentication (``--auth-token`` with ``auth enable``).
  Without a password in the URL, ``$KITE_ETCD_PASSWORD`` is used (so it is not on a command
  line); the password is never shown by ``str()`` or in logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from kitecore.storage import InvalidInputError

__all__ = [
    "CACHE_ENV",
    "DEFAULT_PORT",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "PASSWORD_ENV",
    "EtcdURL",
    "parse_etcd_url",
]

DEFAULT_PORT = 2379
DEFAULT_PREFIX = "/kite"
DEFAULT_TIMEOUT = 5.0
#: The etcd password when the URL names a user but no password.
PASSWORD_ENV = "KITE_ETCD_PASSWORD"
#: ``on``/``off``: the read cache, when the URL has no ``cache=`` option.
CACHE_ENV = "KITE_ETCD_CACHE"
_SWITCH = {"on": True, "true": True, "1": True, "yes": True}
_SWITCH.update({"off": False, "false": False, "0": False, "no": False})
_TLS_OPTIONS = ("ca", "cert", "key")


@dataclass(frozen=True, slots=True)
class EtcdURL:
    """A parsed etcd storage URL."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    #: ``etcds://``: talk TLS to every endpoint.
    tls: bool = False
    #: CA certificates (PEM file) that sign the etcd servers' certificates ("": the system's).
    ca_file: str = ""
    #: Client certificate and key (PEM files) shown to etcd ("": none).
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    #: Serve queries from the watch-fed cache (``cache=off``: every query reads etcd).
    cache: bool = True

    def __str__(self) -> str:
        """The URL again, the password left out."""
        hosts = ",".join(_join_host_port(host, port) for host, port in self.endpoints)
        scheme = "etcds" if self.tls else "etcd"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        query = f"timeout={self.timeout:g}"
        for name, value in (("ca", self.ca_file), ("cert", self.cert_file), ("key", self.key_file)):
            if value:
                query += f"&{name}={quote(value)}"
        if not self.cache:
            query += "&cache=off"
        return f"{scheme}://{user}{hosts}{self.prefix}?{query}"


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


def parse_etcd_url(url: str, environ: Mapping[str, str] | None = None) -> EtcdURL:
    """Parse an ``etcd://`` or ``etcds://`` URL; raise :class:`InvalidInputError` with the
    reason if malformed. ``environ`` (default ``os.environ``) may hold the password."""
    if not isinstance(url, str):
        raise InvalidInputError(f"an etcd URL is a string, not {type(url).__name__}")
    parts = urlsplit(url)
    url = _without_password(url)  # what messages show
    if parts.scheme not in ("etcd", "etcds"):
        raise InvalidInputError(f"not an etcd storage URL: {url!r} (want etcd://host:2379/prefix)")
    userinfo, at, netloc = parts.netloc.rpartition("@")
    username = password = ""
    if at:
        name, colon, secret = userinfo.partition(":")
        username, password = unquote(name), unquote(secret)
        if not username:
            raise InvalidInputError("an etcd URL with '@' needs a user name before it")
        if not colon:
            env = os.environ if environ is None else environ
            password = env.get(PASSWORD_ENV, "")
        if not password:
            raise InvalidInputError(
                f"etcd user {username!r} has no password: put it in the URL or ${PASSWORD_ENV}"
            )
    if not netloc:
        raise InvalidInputError(f"no etcd endpoint in {url!r} (want etcd://host:2379/prefix)")
    endpoints = tuple(_endpoint(item, url) for item in netloc.split(","))
    prefix = unquote(parts.path).rstrip("/") or DEFAULT_PREFIX
    if "//" in prefix:
        raise InvalidInputError(f"empty segment in etcd key prefix {prefix!r}")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - {"timeout", "cache", *_TLS_OPTIONS}
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
    env = os.environ if environ is None else environ
    if "cache" in options:
        cache = _switch(options["cache"][-1], f"the etcd option cache in {url!r}")
    else:
        cache = _switch(env.get(CACHE_ENV, "on"), f"${CACHE_ENV}")
    tls = parts.scheme == "etcds"
    files = {name: options[name][-1] for name in _TLS_OPTIONS if name in options}
    if files and not tls:
        raise InvalidInputError(
            f"the etcd option(s) {', '.join(sorted(files))} need TLS: use etcds://"
        )
    if ("cert" in files) != ("key" in files):
        raise InvalidInputError("an etcd client certificate needs both cert= and key=")
    return EtcdURL(
        endpoints,
        prefix,
        timeout,
        tls=tls,
        ca_file=files.get("ca", ""),
        cert_file=files.get("cert", ""),
        key_file=files.get("key", ""),
        username=username,
        password=password,
        cache=cache,
    )


def _switch(text: str, where: str) -> bool:
    try:
        return _SWITCH[text.strip().lower()]
    except KeyError:
        raise InvalidInputError(f"{where} must be on or off, not {text!r}") from None


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, userinfo = head.partition("://")
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{tail}"
