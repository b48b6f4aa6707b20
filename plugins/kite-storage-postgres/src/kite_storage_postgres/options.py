"""Where the PostgreSQL storage connects, from a storage URL and ``KONTROL_POSTGRES_*`` variables.

URL form (``postgres://`` or ``postgresql://``)::

    postgres://USER:PASSWORD@HOST:PORT/DBNAME?schema=kite&pool_max_size=10&sslmode=require

Parts missing from the URL come from the environment, with Go Kontrol's names
(protocol.md §8.3): ``KONTROL_POSTGRES_HOST``, ``_PORT``, ``_USERNAME``, ``_PASSWORD``,
``_DBNAME``, ``_CONNECTTIMEOUT`` (seconds), plus ``_SCHEMA``. So ``--storage postgres://`` with
the variables set works, and a password need not appear on a command line. What neither gives
is left to asyncpg's libpq-style defaults (``PGHOST``, ``PGUSER``, ``~/.pgpass`` ...).

Query options read by the plugin (all others, such as ``sslmode``, ``passfile`` or a server
setting like ``application_name``, are passed to asyncpg as they are):

``schema``            where the tables live (default ``kite``; letters, digits, ``_``)
``connect_timeout``   seconds to open one connection (default 10)
``command_timeout``   seconds one statement may take (default 10)
``pool_min_size``     connections kept open (default 1)
``pool_max_size``     connections at most (default 10)
``cleanup_interval``  seconds between purges of expired kites (default 60; 0 turns it off)

Writes use ``synchronous_commit=off`` unless the URL says otherwise: registrations are refreshed
by heartbeats, so waiting for a disk flush on each one buys little.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from kitecore.storage import InvalidInputError

__all__ = ["ENV_PREFIX", "SCHEMES", "PostgresOptions"]

#: Prefix of the environment variables (Go Kontrol's ``KONTROL_POSTGRES_``).
ENV_PREFIX = "KONTROL_POSTGRES_"
#: URL schemes this plugin serves.
SCHEMES = ("postgres", "postgresql")

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DEFAULT_SERVER_SETTINGS = {"application_name": "kite-kontrol", "synchronous_commit": "off"}


def _seconds(name: str, text: str, *, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"postgres option {name} must be a number, not {text!r}") from None
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise InvalidInputError(f"postgres option {name} must be positive, not {text!r}")
    return value


def _count(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(
            f"postgres option {name} must be an integer, not {text!r}"
        ) from None
    if value < 0:
        raise InvalidInputError(f"postgres option {name} must not be negative")
    return value


@dataclass(frozen=True)
class PostgresOptions:
    """Connection and pool settings of one :class:`~kite_storage_postgres.PostgresStorage`.

    ``host`` may be a comma-separated host list or a Unix socket directory; empty fields are
    left to asyncpg's defaults. ``params`` are the URL's other query parameters, passed on.
    """

    host: str = ""
    port: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    schema: str = "kite"
    connect_timeout: float = 10.0
    command_timeout: float = 10.0
    pool_min_size: int = 1
    pool_max_size: int = 10
    cleanup_interval: float = 60.0
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _SCHEMA_RE.match(self.schema):
            raise InvalidInputError(
                f"postgres schema name {self.schema!r} must be lower-case letters, digits and _"
            )
        if self.pool_max_size < 1 or self.pool_min_size > self.pool_max_size:
            raise InvalidInputError("postgres pool sizes need 1 <= max and min <= max")

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> PostgresOptions:
        """Parse ``url``, filling missing parts from ``KONTROL_POSTGRES_*`` in ``environ``
        (default :data:`os.environ`). Raises :class:`InvalidInputError` for a malformed URL."""
        env = os.environ if environ is None else environ
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise InvalidInputError(f"not a postgres storage URL: {_redact_text(url)}")
        userinfo, _, hostspec = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        host, port = _split_hostspec(unquote(hostspec))
        database = unquote(parts.path.lstrip("/"))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))

        def pick(value: str, name: str, default: str = "") -> str:
            return value or env.get(ENV_PREFIX + name, "") or default

        options = {
            "host": pick(host, "HOST"),
            "port": pick(port, "PORT"),
            "user": pick(unquote(user), "USERNAME"),
            "password": pick(unquote(password), "PASSWORD"),
            "database": pick(database, "DBNAME"),
            "schema": query.pop("schema", "") or env.get(ENV_PREFIX + "SCHEMA", "") or "kite",
        }
        timeout = query.pop("connect_timeout", "") or env.get(ENV_PREFIX + "CONNECTTIMEOUT", "")
        numbers: dict[str, float | int] = {}
        if timeout:
            numbers["connect_timeout"] = _seconds("connect_timeout", timeout)
        if "command_timeout" in query:
            numbers["command_timeout"] = _seconds("command_timeout", query.pop("command_timeout"))
        if "cleanup_interval" in query:
            interval = query.pop("cleanup_interval")
            numbers["cleanup_interval"] = _seconds("cleanup_interval", interval, allow_zero=True)
        for name in ("pool_min_size", "pool_max_size"):
            if name in query:
                numbers[name] = _count(name, query.pop(name))
        if options["port"] and not options["port"].replace(",", "").isdigit():
            raise InvalidInputError(f"postgres port must be a number: {options['port']!r}")
        return cls(**options, **numbers, params=query)  # type: ignore[arg-type]

    def dsn(self, *, redact: bool = False) -> str:
        """The libpq-style URL asyncpg connects with; ``redact=True`` hides the password
        (use that one in logs and error messages)."""
        userinfo = ""
        if self.user:
            userinfo = quote(self.user, safe="")
        if self.password:
            userinfo += ":" + ("***" if redact else quote(self.password, safe=""))
        if userinfo:
            userinfo += "@"
        hostspec = "" if self.host.startswith("/") else self.host
        if ":" in hostspec and "," not in hostspec:
            hostspec = f"[{hostspec}]"  # IPv6
        if hostspec and self.port and "," not in hostspec:
            hostspec += f":{self.port}"
        query = dict(self.params)
        if self.host.startswith("/"):  # a Unix socket directory goes in the query
            query["host"] = self.host
            if self.port:
                query["port"] = self.port
        text = f"postgresql://{userinfo}{hostspec}/{quote(self.database, safe='')}"
        if query:
            text += "?" + urlencode(query)
        return text

    def connect_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``asyncpg.create_pool`` (besides the DSN)."""
        # asyncpg lets these win over the DSN's own parameters, so the URL's go in here too
        settings = dict(_DEFAULT_SERVER_SETTINGS)
        settings.update({k: v for k, v in self.params.items() if k in settings})
        return {
            "timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
            "min_size": self.pool_min_size,
            "max_size": self.pool_max_size,
            "server_settings": settings,
        }

    def __str__(self) -> str:
        return self.dsn(redact=True)


def _split_hostspec(hostspec: str) -> tuple[str, str]:
    """``host:port`` -> (host, port); a host list or a bracketed IPv6 address is handled."""
    if not hostspec or "," in hostspec:
        return hostspec, ""
    if hostspec.startswith("["):
        host, _, rest = hostspec[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = hostspec.partition(":")
    return host, port


def _redact_text(url: str) -> str:
    """``url`` with the password part of its user info replaced by ``***``."""
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", url)
