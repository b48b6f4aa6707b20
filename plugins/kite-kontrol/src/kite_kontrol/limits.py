"""What one peer may make Kontrol do or hold (docs/limits.md, section "Kontrol").

- Sizes: every identity field and query field at most ``max_identity_field_bytes`` UTF-8 bytes,
  a registered URL at most ``max_url_bytes``; longer ones are refused with an ``argumentError``
  before anything is stored.
- Quota: one username may hold at most ``max_kites_per_user`` registered kites (counted per
  Kontrol instance from its storage); registering one more is refused with a
  ``requestLimitError``, re-registering a kite it already has is always allowed.
- Lockout: ``machine_max_failures`` failed ``registerMachine`` attempts from one peer address or
  for one username within ``machine_failure_window`` seconds lock that address/username out for
  ``machine_lockout`` seconds: every attempt then fails at once with ``cannot authenticate user:
  too many failed attempts ...``, even one with the right secret (so guessing stays slow).

The settings live in :class:`~kite_kontrol.settings.KontrolSettings`; the command line
flags and ``KONTROL_*`` variables are added by :func:`add_limit_options`.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from kitecore.protocol.errors import ArgumentError, RequestLimitError
from kitecore.protocol.identity import FIELDS, KiteIdentity, Query

from .settings import KontrolSettings

__all__ = [
    "FailureLimiter",
    "KiteQuota",
    "add_limit_options",
    "check_identity_sizes",
    "check_url_size",
    "limit_settings",
    "peer_host",
]

Clock = Callable[[], float]


class _Registered(Protocol):
    """What the quota needs of a storage: the registrations matching a query."""

    async def get(self, query: Query) -> Sequence[Any]: ...


def _too_long(text: str, limit: int) -> bool:
    # a str of n characters has at least n UTF-8 bytes and at most 4n
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)


def check_url_size(url: str, settings: KontrolSettings) -> None:
    """Refuse a URL longer than ``settings.max_url_bytes`` with an :class:`ArgumentError`."""
    if _too_long(url, settings.max_url_bytes):
        raise ArgumentError(f"url is longer than {settings.max_url_bytes} bytes")


def check_identity_sizes(kite: KiteIdentity | Query, settings: KontrolSettings) -> None:
    """Refuse an identity or query field longer than ``settings.max_identity_field_bytes``."""
    limit = settings.max_identity_field_bytes
    for name in FIELDS:
        if _too_long(getattr(kite, name), limit):
            raise ArgumentError(f'kite field "{name}" is longer than {limit} bytes')


def peer_host(remote_address: str) -> str:
    """The host part of ``host:port`` or ``[v6]:port`` (what failures are counted by)."""
    host, sep, port = remote_address.rpartition(":")
    if not sep or not port.isdigit():
        return remote_address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class FailureLimiter:
    """Counts failures per key (a peer host, a username) and locks a key out after too many.

    At most ``max_keys`` keys are remembered (the oldest are forgotten first), so a peer
    that invents usernames cannot grow it without bound.
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        *,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._clock = clock
        # key -> (failures in the window, window start, locked until)
        self._keys: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def locked_for(self, key: str) -> float:
        """Seconds ``key`` stays locked out (0 when it may try)."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        left = entry[2] - self._clock()
        return left if left > 0 else 0.0

    def failed(self, key: str) -> None:
        """Count one failure of ``key``; the ``max_failures``-th in a window locks it out."""
        now = self._clock()
        count, start, until = self._keys.pop(key, (0, now, 0.0))
        if now - start > self.window:
            count, start = 0, now
        count += 1
        if count >= self.max_failures:
            until, count, start = now + self.lockout, 0, now
        self._keys[key] = (count, start, until)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures."""
        self._keys.pop(key, None)


class KiteQuota:
    """At most ``limit`` registered kites per username, counted from storage when needed.

    Kontrol remembers the ids it saw registered per username; only when that count reaches the
    limit does it ask the storage for the true count (kites that expired no longer count), at
    most once per ``recount_interval`` seconds per username.
    """

    def __init__(
        self,
        limit: int,
        *,
        recount_interval: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.recount_interval = recount_interval
        self._clock = clock
        self._ids: dict[str, set[str]] = {}
        self._counted: dict[str, float] = {}

    async def admit(self, kite: KiteIdentity, storage: _Registered) -> None:
        """Allow ``kite`` to register, or raise :class:`RequestLimitError` (quota full)."""
        ids = self._ids.setdefault(kite.username, set())
        if kite.id in ids or len(ids) < self.limit:
            ids.add(kite.id)
            return
        now = self._clock()
        if now - self._counted.get(kite.username, -math.inf) >= self.recount_interval:
            self._counted[kite.username] = now
            records = await storage.get(Query(username=kite.username))
            ids = {record.kite.id for record in records}
            self._ids[kite.username] = ids
            if kite.id in ids or len(ids) < self.limit:
                ids.add(kite.id)
                return
        raise RequestLimitError(
            f"user {kite.username} already has {self.limit} registered kites (the quota)"
        )


# --- command line ----------------------------------------------------------------------------

#: flag -> (KontrolSettings field, environment variable, conversion)
_OPTIONS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "--max-kites-per-user": ("max_kites_per_user", "KONTROL_MAX_KITES_PER_USER", int),
    "--max-url-bytes": ("max_url_bytes", "KONTROL_MAX_URL_BYTES", int),
    "--max-identity-field-bytes": (
        "max_identity_field_bytes",
        "KONTROL_MAX_IDENTITY_FIELD_BYTES",
        int,
    ),
    "--machine-max-failures": ("machine_max_failures", "KONTROL_MACHINE_MAX_FAILURES", int),
    "--machine-failure-window": ("machine_failure_window", "KONTROL_MACHINE_FAILURE_WINDOW", float),
    "--machine-lockout": ("machine_lockout", "KONTROL_MACHINE_LOCKOUT", float),
}


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Add a flag per Kontrol limit (each defaults to its ``KONTROL_*`` variable)."""
    defaults = KontrolSettings()
    group = parser.add_argument_group("limits (docs/limits.md)")
    for flag, (name, env, convert) in _OPTIONS.items():
        group.add_argument(
            flag,
            dest=name,
            type=convert,
            default=None,
            help=f"default {getattr(defaults, name)} (or ${env})",
        )


def limit_settings(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """Limit fields set by flags or ``KONTROL_*`` variables, for ``KontrolSettings(**...)``."""
    values: dict[str, Any] = {}
    for name, env, convert in _OPTIONS.values():
        value = getattr(args, name, None)
        if value is None and environ.get(env):
            try:
                value = convert(environ[env])
            except ValueError:
                raise ValueError(f"{env}={environ[env]!r} is not a number") from None
        if value is not None:
            values[name] = value
    return values
