"""Where the etcd storage keeps things: key names, value encoding and query plans (no I/O).

Under the URL's prefix ``P`` (default ``/kite``), one registration is four keys written in one
transaction and attached to one lease (so they expire together)::

    P/kites/<username>/<environment>/<name>/<version>/<region>/<hostname>/<id>   record
    P/ids/<id>                                                                   record
    P/names/<name>/<id>                                                          record
    P/owners/<id>                                                                username

A *record* is ``{"kite": {...identity...}, "url", "key_id", "ttl"}``, so any one key answers a
query without a second read. The id index holds the record itself; Go's etcd storage kept a copy
of the bare value there and could not tell whose it was, which broke ID lookups. The owner key
lets one transaction refuse to hand a live id to another username.

Key pairs never expire::

    P/keys/<key id>                 {"id", "public", "private", "deleted_at"}
    P/keys-public/<sha256(public)>  key id
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kitecore.protocol.errors import ArgumentError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import KeyPairRecord, KiteRecord, StorageError

__all__ = ["KeyLayout", "QueryPlan", "StoredKite", "decode_key_pair", "encode_key_pair"]


@dataclass(frozen=True, slots=True)
class StoredKite:
    """A registration as stored: the record plus the lease TTL (whole seconds) it was given."""

    record: KiteRecord
    ttl: int

    def encode(self) -> bytes:
        """The JSON value stored under the kite's keys."""
        record = self.record
        obj = {
            "kite": record.kite.to_wire(),
            "url": record.url,
            "key_id": record.key_id,
            "ttl": self.ttl,
        }
        return json.dumps(obj, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> StoredKite:
        """Parse :meth:`encode` output; raise :class:`StorageError` for foreign or broken data."""
        try:
            obj: Any = json.loads(data)
            kite = KiteIdentity.from_wire(obj["kite"])
            url, key_id, ttl = obj["url"], obj["key_id"], obj.get("ttl", 0)
            if not isinstance(url, str) or not isinstance(key_id, str) or type(ttl) is not int:
                raise TypeError("url and key_id must be strings, ttl an integer")
        except (ValueError, TypeError, KeyError, ArgumentError) as exc:
            raise StorageError(f"unreadable kite record in etcd: {exc}") from None
        return cls(KiteRecord(kite, url, key_id), ttl)


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What to read for a query: one key (``prefix`` false) or every key under a prefix."""

    key: bytes
    prefix: bool


class KeyLayout:
    """Key names under one prefix (``/kite`` by default)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        root = self.prefix.encode()
        self._kites = root + b"/kites/"
        self._ids = root + b"/ids/"
        self._names = root + b"/names/"
        self._owners = root + b"/owners/"
        self._keys = root + b"/keys/"
        self._keys_public = root + b"/keys-public/"

    # kites

    def kite_key(self, kite: KiteIdentity) -> bytes:
        """The main key: the identity's path under ``P/kites``."""
        return self._kites + kite.path[1:].encode()

    def id_key(self, kite_id: str) -> bytes:
        """The id index key."""
        return self._ids + kite_id.encode()

    @property
    def id_prefix(self) -> bytes:
        """The prefix of every id index key (what the change feed watches)."""
        return self._ids

    def name_key(self, kite: KiteIdentity) -> bytes:
        """The name index key."""
        return self._names + kite.name.encode() + b"/" + kite.id.encode()

    def owner_key(self, kite_id: str) -> bytes:
        """The key holding the username that owns a live id."""
        return self._owners + kite_id.encode()

    def record_keys(self, kite: KiteIdentity) -> tuple[bytes, bytes, bytes]:
        """The three keys that hold the record of ``kite``."""
        return self.kite_key(kite), self.id_key(kite.id), self.name_key(kite)

    def plan(self, query: Query) -> QueryPlan:
        """The cheapest read that covers ``query`` (the caller filters what it reads).

        By id: one key. With a username: the path prefix made of username, environment and
        name as far as they are given without a gap (``version`` is compared as a version, so
        it never narrows a prefix). Else by name: the name index. Else every kite.
        """
        if query.id:
            return QueryPlan(self.id_key(query.id), False)
        if query.username:
            key = self._kites + query.username.encode() + b"/"
            if query.environment:
                key += query.environment.encode() + b"/"
                if query.name:
                    key += query.name.encode() + b"/"
            return QueryPlan(key, True)
        if query.name:
            return QueryPlan(self._names + query.name.encode() + b"/", True)
        return QueryPlan(self._kites, True)

    # key pairs

    def key_pair_key(self, key_id: str) -> bytes:
        """Where the pair ``key_id`` is stored."""
        return self._keys + key_id.encode()

    def public_key_key(self, public: str) -> bytes:
        """The index from a (stripped) public PEM to its pair's id."""
        digest = hashlib.sha256(public.strip().encode()).hexdigest()
        return self._keys_public + digest.encode()


def encode_key_pair(pair: KeyPairRecord) -> bytes:
    """The JSON value of a stored key pair (PEMs stripped)."""
    obj = {
        "id": pair.id,
        "public": pair.public.strip(),
        "private": pair.private.strip(),
        "deleted_at": pair.deleted_at,
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_key_pair(data: bytes) -> KeyPairRecord:
    """Parse :func:`encode_key_pair` output; raise :class:`StorageError` if broken."""
    try:
        obj = json.loads(data)
        deleted_at = obj.get("deleted_at")
        pair = KeyPairRecord(
            id=obj["id"],
            public=obj["public"],
            private=obj.get("private", ""),
            deleted_at=None if deleted_at is None else float(deleted_at),
        )
        if not all(isinstance(v, str) for v in (pair.id, pair.public, pair.private)):
            raise TypeError("key pair fields must be strings")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageError(f"unreadable key pair in etcd: {exc}") from None
    return pair
