"""Kontrol's RPC arguments and answers, as plain data (sans-IO; protocol.md §7.1).

Builders return the ``withArgs[0]`` a Go kite sends; parsers check Kontrol's answers and raise
:class:`~kitecore.protocol.errors.InvalidResponseError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kitecore.protocol.errors import ArgumentError, GenericError, InvalidResponseError, KiteError
from kitecore.protocol.identity import FIELDS, KiteIdentity, Query

__all__ = [
    "KiteRecord",
    "NoKitesError",
    "RegisterResult",
    "get_kites_args",
    "get_token_args",
    "map_kontrol_error",
    "parse_get_kites_result",
    "parse_register_result",
    "register_args",
    "to_query",
]

#: Kontrol's answer when a query matches nothing (and Go's client-side variant).
NO_KITES = ("no kites found", "no kites availabile", "no kites available")


class NoKitesError(GenericError):
    """Kontrol knows no kite matching the query (``no kites found``)."""


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """Kontrol's answer to ``register``.

    ``kite_key`` and ``public_key`` are set only when Kontrol rotated its keys: the kite.key
    re-signed with the current pair, and that pair's public key.
    """

    url: str
    heartbeat_interval: float = 0.0
    public_key: str = ""
    kite_key: str = ""


@dataclass(frozen=True, slots=True)
class KiteRecord:
    """One kite of a ``getKites`` answer: who, where, and a token to call it with."""

    kite: KiteIdentity
    url: str
    token: str
    key_id: str = ""


def to_query(query: Query | KiteIdentity | Mapping[str, str] | None = None, **fields: str) -> Query:
    """Make a :class:`Query` from a query, an identity, a mapping or keyword fields.

    Unknown field names are refused with :class:`ArgumentError` (a typo would widen the query).
    """
    if isinstance(query, KiteIdentity):
        query = query.query()
    if isinstance(query, Query):
        if fields:
            raise ArgumentError("pass either a Query or query fields, not both")
        return query
    merged = {**(dict(query) if query else {}), **fields}
    unknown = sorted(set(merged) - set(FIELDS))
    if unknown:
        raise ArgumentError(
            f"unknown query field(s) {', '.join(unknown)}; fields are {', '.join(FIELDS)}"
        )
    return Query.from_wire(merged)


def register_args(url: str) -> dict[str, str]:
    """``withArgs[0]`` of ``register``: ``{"url": url}``."""
    return {"url": url}


def get_kites_args(query: Query) -> dict[str, Any]:
    """``withArgs[0]`` of ``getKites``: ``{"query": {...}}``."""
    return {"query": query.to_wire()}


def get_token_args(query: Query, *, force: bool = False) -> dict[str, Any]:
    """``withArgs[0]`` of ``getToken``: the query's fields, plus ``"force": true`` if asked."""
    args: dict[str, Any] = query.to_wire()
    if force:
        args["force"] = True
    return args


def parse_register_result(result: Any) -> RegisterResult:
    """Check and convert ``register``'s answer ``{"url", "heartbeatInterval", ...}``."""
    if not isinstance(result, dict):
        raise InvalidResponseError(f"register answered {_kind(result)}, not an object")
    error = result.get("err")
    if error:
        raise GenericError(str(error))
    url = _string(result, "url", "register")
    interval = result.get("heartbeatInterval") or 0
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise InvalidResponseError(
            f"register answered a non-numeric heartbeatInterval {interval!r}"
        )
    return RegisterResult(
        url=url,
        heartbeat_interval=float(interval),
        public_key=_string(result, "publicKey", "register"),
        kite_key=_string(result, "kiteKey", "register"),
    )


def parse_get_kites_result(result: Any) -> list[KiteRecord]:
    """Check and convert ``getKites``' answer ``{"kites": [{kite, url, keyId, token}, ...]}``."""
    items = result.get("kites") if isinstance(result, dict) else None
    if items is None and isinstance(result, dict):
        items = []  # Go encodes an empty slice as null
    if not isinstance(items, list):
        raise InvalidResponseError(f"getKites answered {_kind(result)}, not {{kites: [...]}}")
    records = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidResponseError(f"getKites listed {_kind(item)}, not a kite object")
        try:
            identity = KiteIdentity.from_wire(item.get("kite"))
        except ArgumentError as exc:
            raise InvalidResponseError(f"getKites listed a bad kite: {exc.message}") from None
        records.append(
            KiteRecord(
                kite=identity,
                url=_string(item, "url", "getKites"),
                token=_string(item, "token", "getKites"),
                key_id=_string(item, "keyId", "getKites"),
            )
        )
    return records


def map_kontrol_error(exc: KiteError) -> KiteError:
    """Kontrol's "no kites found" as :class:`NoKitesError`; other errors unchanged."""
    if not isinstance(exc, NoKitesError) and exc.type == "genericError":
        if any(text in exc.message for text in NO_KITES):
            return NoKitesError(exc.message, code=exc.code, id=exc.id)
    return exc


def _string(obj: dict[str, Any], key: str, method: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidResponseError(f"{method} answered a non-string {key!r}: {value!r}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
