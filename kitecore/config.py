"""Kite configuration: defaults, ``KITE_*`` environment variables and the kite.key file.

Field names follow Go's ``config.Config`` (protocol.md §9) in snake case. Durations are
seconds as floats; environment variables accept Go duration strings (``"30s"``,
``"1m30s"``, ``"500ms"``) as well as plain numbers of seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Parse a Go duration string (``"1m30s"``) or a number of seconds into seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}: use seconds or a Go duration like '15s'")
    return total


class ConfigError(ValueError):
    """A ``KITE_*`` environment variable has a value that cannot be used; the message is one
    line naming the variable and the value."""


def _port(text: str) -> int:
    """A TCP port number, 0 (any free port) to 65535."""
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError("expected a port number from 0 (any free port) to 65535")
    return port


def _positive_duration(text: str) -> float:
    """A duration above zero: seconds (``15``, ``0.5``) or a Go duration (``15s``, ``1m30s``)."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError("expected a duration above zero, in seconds (15) or like 15s or 1m30s")
    return seconds


def _duration_or_zero(text: str) -> float:
    """A duration of zero (off) or more: seconds or a Go duration."""
    if text.strip() in ("0", "0s"):
        return 0.0
    return _positive_duration(text)


def _whole_number(text: str) -> int:
    """A whole number, zero or more."""
    try:
        number = int(text.strip())
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError("expected a whole number, zero or more")
    return number


def _positive_int(text: str) -> int:
    """A whole number above zero."""
    try:
        number = int(text.strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError("expected a whole number above zero")
    return number


def _flag(text: str) -> bool:
    """A yes/no switch: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1, true, yes or on (or 0, false, no, off)")


def kite_home(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding ``kite.key``: ``$KITE_HOME`` if set and non-empty, else ``~/.kite``."""
    env = os.environ if environ is None else environ
    home = env.get("KITE_HOME")
    return Path(home) if home else Path.home() / ".kite"


def kite_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the kite.key lives: ``kite_home() / "kite.key"``."""
    return kite_home(environ) / "kite.key"


def write_kite_key(token: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``token`` as the kite.key (default :func:`kite_key_path`) and return the path.

    As Go's ``kitekey.Write``: missing directories are created with mode 0700, the previous
    file is removed (a 0400 file cannot be overwritten in place), the new one is created with
    mode 0400 (owner read-only).
    """
    token = token.strip()
    if not token:
        raise ValueError("refusing to write an empty kite.key")
    key_path = Path(path) if path is not None else kite_key_path()
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token)
    logger.info("wrote kite.key to %s", key_path)
    return key_path


@dataclass
class Config:
    """Everything a kite needs to know about itself and how to talk to others.

    Build one with :meth:`from_env` to honour ``KITE_*`` variables; ``Config()`` gives
    the defaults only.
    """

    username: str = "unknown"
    environment: str = "unknown"
    region: str = "unknown"
    id: str = ""
    ip: str = "0.0.0.0"
    port: int = 0
    kontrol_url: str = ""
    kontrol_user: str = ""
    kontrol_key: str = ""
    kite_key: str = ""
    #: ``auto`` picks the transport from the URL; or a transport name such as ``websocket``.
    transport: str = "auto"
    #: Default timeout of :meth:`Client.tell` and of calls to Kontrol, in seconds.
    timeout: float = 15.0
    handshake_timeout: float = 15.0
    #: When true, methods registered without an explicit ``auth=`` accept unauthenticated calls.
    disable_authentication: bool = False
    #: Largest message accepted from a peer, in bytes of text.
    max_message_size: int = 16 * 1024 * 1024
    #: Most functions one connection holds for its peer (``KITE_MAX_CALLBACKS``; docs/limits.md).
    max_callbacks: int = 10_000
    #: Seconds between kite.key trust-cache refreshes (``KITE_VERIFY_TTL``).
    verify_ttl: float = 300.0
    # --- built-ins' limits (docs/limits.md, "Built-ins") ---
    #: Shortest ``kite.heartbeat`` interval honoured; shorter requests are raised to it (seconds).
    min_heartbeat_interval: float = 1.0
    # --- network limits (docs/limits.md, "Network") ---
    #: Accepted connections open at once (0: only the descriptor limit); more get a 503.
    max_connections: int = 16384
    #: Accepted connections open at once from one peer address (0: no limit).
    max_connections_per_ip: int = 0
    #: Seconds an upgraded connection may receive nothing before it is closed (0: never);
    #: it is pinged after half of that, and a peer that answers is kept.
    idle_timeout: float = 300.0
    #: Bytes queued for a peer that does not read before its connection is closed (1008).
    max_outbound_bytes: int = 64 * 1024 * 1024
    #: Largest HTTP request head accepted (431 beyond).
    max_header_size: int = 64 * 1024
    # --- lifecycle ---
    #: Seconds a graceful shutdown (SIGTERM/SIGINT, the end of ``async with kite``) lets the
    #: calls in flight finish before it closes the connections.
    shutdown_timeout: float = 10.0
    # --- TLS (README, "TLS"; kitecore.tls) ---
    #: Certificate chain (PEM) this kite serves ``https://`` / ``wss://`` with, with its key.
    tls_cert_file: str = ""
    #: Private key (PEM) of ``tls_cert_file``.
    tls_key_file: str = ""
    #: CA certificates (PEM): when set, clients must present a certificate signed by one.
    tls_client_ca_file: str = ""
    #: CA certificates (PEM) trusted, beside the system's, when dialing ``https://``/``wss://``.
    tls_ca_file: str = ""
    #: Certificate chain (PEM) presented to servers that ask for one (mutual TLS).
    tls_client_cert_file: str = ""
    #: Private key (PEM) of ``tls_client_cert_file`` (unset: it is in that file).
    tls_client_key_file: str = ""
    #: Dial ``https://``/``wss://`` without verifying certificates (logged as a WARNING).
    tls_insecure: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Config:
        """A deep copy (Go's ``Config.Copy``)."""
        return dataclasses.replace(self, extra=dict(self.extra))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Defaults, then the kite.key in :func:`kite_home` (if any), then the ``KITE_*``
        environment variables of protocol.md §9.

        A variable whose value cannot be used raises :class:`ConfigError`, naming it."""
        env = os.environ if environ is None else environ
        config = cls()
        config.read_kite_key(kite_key_path(env))
        config.read_environment(env)
        return config

    def read_kite_key(self, path: str | os.PathLike[str]) -> bool:
        """Apply the kite.key file at ``path``; False (logged) if it is missing or unusable.

        A missing file is normal (the kite has not registered with Kontrol); an unreadable or
        corrupt one is reported as a warning and leaves the config unchanged.
        """
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            logger.debug("no kite.key at %s", path)
            return False
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("cannot read the kite.key at %s, ignoring it: %s", path, exc)
            return False
        try:
            self.apply_kite_key(token)
        except ValueError as exc:
            logger.warning("the kite.key at %s is corrupt, ignoring it: %s", path, exc)
            return False
        logger.debug("read kite.key at %s (user %s)", path, self.username)
        return True

    def apply_kite_key(self, token: str) -> None:
        """Take ``kite_key``, ``username`` (``sub``), ``kontrol_user`` (``iss``),
        ``kontrol_url``, ``kontrol_key`` and ``id`` (``jti``) from the kite.key JWT ``token``.

        The signature is not checked here (kites that receive the key check it); a token
        that is not a kite.key raises ``ValueError`` and changes nothing.
        """
        from kitecore.discovery.claims import unverified_claims

        claims = unverified_claims(token)
        fields = {
            "username": claims.get("sub"),
            "kontrol_user": claims.get("iss"),
            "kontrol_url": claims.get("kontrolURL"),
            "kontrol_key": claims.get("kontrolKey"),
            "id": claims.get("jti"),
        }
        for claim, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"kite.key claim for {claim} is not a string: {value!r}")
        if not fields["username"]:
            raise ValueError("kite.key has no 'sub' (username) claim")
        if not fields["kontrol_key"]:
            raise ValueError("kite.key has no 'kontrolKey' claim")
        self.kite_key = token.strip()
        for name, value in fields.items():
            if value:
                setattr(self, name, value)

    def read_environment(self, environ: Mapping[str, str]) -> None:
        """Apply the ``KITE_*`` variables found in ``environ`` to this config."""
        for var, (name, convert) in _ENVIRONMENT.items():
            value = environ.get(var)
            if value:
                setattr(self, name, _checked(var, convert, value))


#: ``KITE_*`` variable -> (config field, conversion); protocol.md §9 plus our own limits.
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "KITE_USERNAME": ("username", str),
    "KITE_ENVIRONMENT": ("environment", str),
    "KITE_REGION": ("region", str),
    "KITE_IP": ("ip", str),
    "KITE_KONTROL_URL": ("kontrol_url", str),
    "KITE_TRANSPORT": ("transport", str),
    "KITE_PORT": ("port", _port),
    "KITE_TIMEOUT": ("timeout", _positive_duration),
    "KITE_HANDSHAKE_TIMEOUT": ("handshake_timeout", _positive_duration),
    "KITE_VERIFY_TTL": ("verify_ttl", _positive_duration),
    "KITE_MAX_MESSAGE_SIZE": ("max_message_size", _positive_int),
    # built-ins' limits
    "KITE_MIN_HEARTBEAT_INTERVAL": ("min_heartbeat_interval", _positive_duration),
    # connection limits
    "KITE_MAX_CALLBACKS": ("max_callbacks", _positive_int),
    # network limits (0 turns the limit off where the field says so)
    "KITE_MAX_CONNECTIONS": ("max_connections", _whole_number),
    "KITE_MAX_CONNECTIONS_PER_IP": ("max_connections_per_ip", _whole_number),
    "KITE_IDLE_TIMEOUT": ("idle_timeout", _duration_or_zero),
    "KITE_MAX_OUTBOUND_BYTES": ("max_outbound_bytes", _whole_number),
    "KITE_MAX_HEADER_SIZE": ("max_header_size", _positive_int),
    # lifecycle
    "KITE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", _duration_or_zero),
    # TLS (README, "TLS")
    "KITE_TLS_CERT_FILE": ("tls_cert_file", str),
    "KITE_TLS_KEY_FILE": ("tls_key_file", str),
    "KITE_TLS_CLIENT_CA_FILE": ("tls_client_ca_file", str),
    "KITE_TLS_CA_FILE": ("tls_ca_file", str),
    "KITE_TLS_CLIENT_CERT_FILE": ("tls_client_cert_file", str),
    "KITE_TLS_CLIENT_KEY_FILE": ("tls_client_key_file", str),
    "KITE_TLS_INSECURE": ("tls_insecure", _flag),
}


def _checked(var: str, convert: Callable[[str], object], value: str) -> object:
    try:
        return convert(value)
    except ValueError as exc:
        raise ConfigError(f"{var}={value!r} is invalid: {exc}") from None
