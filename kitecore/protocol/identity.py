"""Kite identities and Kontrol queries (protocol.md §3, §7.2).

A kite is named by seven strings. Its canonical path is
``/<username>/<environment>/<name>/<version>/<region>/<hostname>/<id>``; on the wire the identity
is a JSON object in Go's key order ``name, username, id, environment, region, version,
hostname``. A :class:`Query` has the same seven fields, any of them empty meaning "any", and its
``version`` may be a go-version constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import ArgumentError
from .version import version_matches

__all__ = ["FIELDS", "KiteIdentity", "Query", "forget_recent_identities"]

#: The seven identity fields in path order (also the dataclass field order).
FIELDS = ("username", "environment", "name", "version", "region", "hostname", "id")


def _fields_from_wire(obj: Any, what: str) -> dict[str, str]:
    """Pick the seven fields out of a JSON object; missing or null -> "", others must be str."""
    if not isinstance(obj, dict):
        raise ArgumentError(f"{what} is not an object: {type(obj).__name__}")
    values = {}
    for key in FIELDS:
        value = obj.get(key)
        if value is None:
            value = ""
        elif not isinstance(value, str):
            raise ArgumentError(f'{what} field "{key}" is not a string: {value!r}')
        values[key] = value
    return values


def _path_tuple(kite: KiteIdentity) -> tuple[str, ...]:
    return (
        kite.username,
        kite.environment,
        kite.name,
        kite.version,
        kite.region,
        kite.hostname,
        kite.id,
    )


_RECENT_IDENTITIES: dict[tuple[str, ...], KiteIdentity] = {}
_RECENT_IDENTITIES_MAX = 1024
#: The JSON object parsed last and its identity: an equal object (seven string compares)
#: is the same identity, found without hashing its fields (a kite's callers are mostly one).
_last_wire: tuple[dict[str, Any], KiteIdentity] | None = None


def forget_recent_identities() -> None:
    """Empty the cache of identities parsed from the wire (a server does it after a crowd
    of connections has gone: entries made amid the crowd would keep its memory arenas)."""
    global _last_wire
    _RECENT_IDENTITIES.clear()
    _last_wire = None


def _split_path(text: str) -> list[str]:
    parts = text.split("/", len(FIELDS) - 1)
    return parts + [""] * (len(FIELDS) - len(parts))


@dataclass(frozen=True, slots=True)
class KiteIdentity:
    """Who a kite is: the seven fields that name it."""

    username: str
    environment: str
    name: str
    version: str
    region: str
    hostname: str
    id: str

    def to_wire(self) -> dict[str, str]:
        """Return the JSON object, keys in Go's order."""
        return {
            "name": self.name,
            "username": self.username,
            "id": self.id,
            "environment": self.environment,
            "region": self.region,
            "version": self.version,
            "hostname": self.hostname,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> KiteIdentity:
        """Build an identity from its JSON object; raises :class:`ArgumentError` if malformed.

        Missing or null fields become ``""`` (as Go's decoder does); unknown keys are ignored.
        """
        # Every request carries the caller's identity, and a connection sees the same one
        # again and again: remember recent ones (keys only ever hold seven str values).
        global _last_wire
        if cls is KiteIdentity and type(obj) is dict:
            last = _last_wire
            # (an object equal to one parsed before holds equal strings, or nulls, in the
            # same keys: the values that parsed are all a string equals)
            if last is not None and obj == last[0]:
                return last[1]
            try:
                cached = _RECENT_IDENTITIES.get(
                    (
                        obj["username"],
                        obj["environment"],
                        obj["name"],
                        obj["version"],
                        obj["region"],
                        obj["hostname"],
                        obj["id"],
                    )
                )
            except (KeyError, TypeError):  # a missing key, or an unhashable (invalid) value
                cached = None
            if cached is not None:
                _last_wire = (dict(obj), cached)  # (a copy: the message's may change)
                return cached
        identity = cls(**_fields_from_wire(obj, "kite"))
        if cls is KiteIdentity:
            if len(_RECENT_IDENTITIES) >= _RECENT_IDENTITIES_MAX:
                _RECENT_IDENTITIES.clear()
            _RECENT_IDENTITIES[_path_tuple(identity)] = identity
            if type(obj) is dict:
                _last_wire = (dict(obj), identity)
        return identity

    @property
    def path(self) -> str:
        """``/username/environment/name/version/region/hostname/id``."""
        return (
            f"/{self.username}/{self.environment}/{self.name}/{self.version}"
            f"/{self.region}/{self.hostname}/{self.id}"
        )

    @classmethod
    def from_path(cls, text: str) -> KiteIdentity:
        """Parse a path made by :attr:`path`; missing trailing parts become ``""``.

        Raises :class:`ArgumentError` when ``text`` does not start with ``/``.
        """
        if not text.startswith("/"):
            raise ArgumentError(f"Invalid Kite string: {text!r} does not start with '/'")
        return cls(*_split_path(text[1:]))

    def validate(self) -> None:
        """Raise :class:`ArgumentError` if a field is empty or contains ``/`` (Go's rules)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not value:
                raise ArgumentError(f"Empty Kite field: {f.name}")
            if "/" in value:
                raise ArgumentError(f"Field \"{f.name}\" must not contain '/'")

    def query(self) -> Query:
        """A query that matches exactly this kite (all seven fields set)."""
        return Query(*(getattr(self, name) for name in FIELDS))

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class Query:
    """A Kontrol query: empty fields match anything; ``version`` may be a constraint."""

    username: str = ""
    environment: str = ""
    name: str = ""
    version: str = ""
    region: str = ""
    hostname: str = ""
    id: str = ""

    def to_wire(self) -> dict[str, str]:
        """Return the JSON object, keys in Go's ``KontrolQuery`` order."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_wire(cls, obj: Any) -> Query:
        """Build a query from its JSON object; unknown keys are ignored, non-strings refused."""
        return cls(**_fields_from_wire(obj, "query"))

    @classmethod
    def from_path(cls, text: str) -> Query:
        """Parse ``username/environment/name[/version/...]``, with or without a leading ``/``."""
        return cls(*_split_path(text[1:] if text.startswith("/") else text))

    def is_empty(self) -> bool:
        """True when every field is empty."""
        return not any(getattr(self, name) for name in FIELDS)

    def matches(self, identity: KiteIdentity) -> bool:
        """True when every non-empty field equals the identity's.

        ``version`` is compared as a version, or checked as a constraint such as ``">= 1.0"``;
        a malformed constraint raises :class:`ArgumentError`.
        """
        for name in FIELDS:
            wanted = getattr(self, name)
            if not wanted:
                continue
            have = getattr(identity, name)
            if have == wanted:
                continue
            if name != "version" or not version_matches(have, wanted):
                return False
        return True

    def __str__(self) -> str:
        return "/" + "/".join(getattr(self, name) for name in FIELDS).rstrip("/")
