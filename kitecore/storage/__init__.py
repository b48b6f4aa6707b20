"""The Kontrol storage contract: where registered kites and Kontrol's key pairs live.

Liveness lives here, not in one Kontrol's memory, so several Kontrols can share one storage
(protocol.md §7.6, DESIGN.md layer 5). A backend is chosen by URL scheme through the
``kite_register_storages`` hook (``memory://`` is built in: :mod:`kitecore.storage.memory`); every
backend runs the contract suite in :mod:`kitecore.contracts.storage`. The interface lives in the
core so that storage plugins depend on kitecore only; Kontrol itself is the kite-kontrol plugin.

Rules every backend keeps
-------------------------

Kites
    Entries are keyed by the kite ``id``. :meth:`Storage.upsert` stores or replaces one;
    :meth:`Storage.update` refreshes a live one. Each write sets the entry to expire ``ttl``
    seconds later; an expired entry is **never** returned, whether or not it was purged yet.
    An id that is live under one username cannot be taken over by another username
    (:class:`IdConflictError`): kite ids are claimed by the kites themselves, so without this
    rule anyone could overwrite someone else's registration.

Queries (Postgres semantics, protocol.md §7.2)
    Every non-empty field of the :class:`~kitecore.protocol.identity.Query` must match; gaps are
    allowed and no field is required (an ID-only query is just a query with ``id`` set). A query
    with every field empty is refused (``all query fields are empty``): listing the whole registry
    is not what a client means. ``version`` is an exact version (compared as a version, so
    ``1.0`` finds ``1.0.0``) or a go-version constraint (``~> 1.1``, ``>= 1.0, < 1.4``). No match
    gives ``[]``. The order of results is unspecified (Kontrol shuffles them). This is more useful
    than etcd's "contiguous prefix starting at username" rule, which refuses a query by name and
    environment alone and needed a special case for ID lookups.

Bad input
    Empty identity fields, ``/`` inside a field, an empty URL or key id, a field with ``/`` or a
    malformed constraint in a query raise :class:`InvalidInputError` and store nothing.

Change feed
    :meth:`Storage.watch` yields a :class:`~kitecore.storage.feed.ChangeFeed` of
    :class:`~kitecore.storage.feed.StorageEvent`: ``REGISTER`` when a kite id becomes live (a
    first registration, one after expiry or deletion, or the same id under another identity,
    which first gives ``DEREGISTER`` of the old one), ``DEREGISTER`` when a live kite is deleted
    or expires (noticed within a backend-specific delay), never for refreshes or for a live kite
    registering again with the same identity. Every write any process makes to the same storage
    shows, once, in order per kite. ``RESYNC`` says changes may have been missed (the reader
    fell behind, or the backend lost its server and reconnected): the reader reads again.
    Entering ``watch()`` returns once the feed is live: every change committed afterwards is
    delivered.

Key pairs
    Kontrol's RSA key pairs (:class:`KeyPairRecord`). :meth:`Storage.delete_key` is a soft delete:
    the pair is *retired*, still found by id and public key (so Kontrol keeps trusting kite.keys it
    signed and can re-sign them), but :meth:`Storage.get_key_by_id` and
    :meth:`Storage.get_key_by_public` raise :class:`KeyDeletedError` carrying the record, and
    :meth:`Storage.is_valid` answers false.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from kitecore.protocol.errors import ArgumentError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.protocol.version import Constraint, Version
from kitecore.storage.feed import DEREGISTER, REGISTER, RESYNC, ChangeFeed, StorageEvent

__all__ = [
    "DEREGISTER",
    "REGISTER",
    "RESYNC",
    "ChangeFeed",
    "IdConflictError",
    "InvalidInputError",
    "KeyDeletedError",
    "KeyNotFoundError",
    "KeyPairRecord",
    "KiteRecord",
    "RegisterValue",
    "Storage",
    "StorageError",
    "StorageEvent",
    "WatchUnsupportedError",
    "validate_key_pair",
    "validate_kite",
    "validate_query",
    "validate_ttl",
    "validate_value",
    "validate_write",
]

logger = logging.getLogger(__name__)


# --- errors ------------------------------------------------------------------------------------


class StorageError(Exception):
    """A storage operation failed. Backends map their driver's errors to this (or a subclass)."""


class InvalidInputError(StorageError, ValueError):
    """The caller passed something the storage refuses to store or look up; nothing was stored."""


class IdConflictError(StorageError):
    """A live kite with this id is registered by another username."""


class WatchUnsupportedError(StorageError):
    """This storage has no change feed (:meth:`Storage.watch`)."""


class KeyNotFoundError(StorageError, LookupError):
    """No key pair with this id or public key (Go's ``ErrNoKeyFound``)."""

    def __init__(self, message: str = "no key pair found") -> None:
        super().__init__(message)


class KeyDeletedError(StorageError):
    """The key pair exists but was retired (Go's ``ErrKeyDeleted``); ``record`` is the pair."""

    def __init__(self, record: KeyPairRecord) -> None:
        super().__init__("key pair is removed")
        self.record = record


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """What is stored for a kite: where it is reached and which Kontrol key pair it trusts."""

    url: str
    key_id: str


@dataclass(frozen=True, slots=True)
class KiteRecord:
    """One live registration, as :meth:`Storage.get` returns it."""

    kite: KiteIdentity
    url: str
    key_id: str

    def to_wire(self, token: str = "") -> dict[str, Any]:
        """The ``getKites`` result entry: ``{"kite", "url", "keyId", "token"}``."""
        return {"kite": self.kite.to_wire(), "url": self.url, "keyId": self.key_id, "token": token}


@dataclass(frozen=True, slots=True)
class KeyPairRecord:
    """A Kontrol RSA key pair as stored: PEM texts (stripped) and an id (a UUID string).

    ``deleted_at`` is the Unix time it was retired, ``None`` while active.
    """

    id: str
    public: str
    private: str = ""
    deleted_at: float | None = None

    def __repr__(self) -> str:  # never show the private key
        state = "active" if self.deleted_at is None else "retired"
        return f"KeyPairRecord(id={self.id!r}, {state})"

    @property
    def retired(self) -> bool:
        """True once :meth:`Storage.delete_key` soft-deleted it."""
        return self.deleted_at is not None


# --- validation shared by backends -------------------------------------------------------------


def validate_kite(kite: KiteIdentity) -> None:
    """Raise :class:`InvalidInputError` unless all seven fields are non-empty and free of ``/``."""
    if not isinstance(kite, KiteIdentity):
        raise InvalidInputError(f"expected a KiteIdentity, got {type(kite).__name__}")
    try:
        kite.validate()
    except ArgumentError as exc:
        raise InvalidInputError(exc.message) from None


def validate_value(value: RegisterValue) -> None:
    """Raise :class:`InvalidInputError` for an empty URL or key id."""
    if not isinstance(value, RegisterValue):
        raise InvalidInputError(f"expected a RegisterValue, got {type(value).__name__}")
    if not value.url:
        raise InvalidInputError("empty url")
    if not value.key_id:
        raise InvalidInputError("empty key id")


def validate_ttl(ttl: float) -> None:
    """Raise :class:`InvalidInputError` unless ``ttl`` is a positive number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise InvalidInputError(f"ttl must be a positive number of seconds, not {ttl!r}")


def validate_write(kite: KiteIdentity, value: RegisterValue, ttl: float) -> None:
    """The checks of every ``upsert`` and ``update``: identity, value and TTL."""
    validate_kite(kite)
    validate_value(value)
    validate_ttl(ttl)


def validate_query(query: Query) -> None:
    """Raise :class:`InvalidInputError` for an all-empty query, ``/`` in a field, or a ``version``
    that is neither a version nor a constraint."""
    if not isinstance(query, Query):
        raise InvalidInputError(f"expected a Query, got {type(query).__name__}")
    if query.is_empty():
        raise InvalidInputError("all query fields are empty")
    for f in fields(query):
        value = getattr(query, f.name)
        if not isinstance(value, str):
            raise InvalidInputError(f'query field "{f.name}" is not a string')
        if "/" in value:
            raise InvalidInputError(f"Field \"{f.name}\" must not contain '/'")
    if query.version:
        try:
            Version.parse(query.version)
        except ArgumentError:
            try:
                Constraint.parse(query.version)
            except ArgumentError as exc:
                raise InvalidInputError(exc.message) from None


def validate_key_pair(pair: KeyPairRecord) -> None:
    """Raise :class:`InvalidInputError` for an empty id or public key."""
    if not isinstance(pair, KeyPairRecord):
        raise InvalidInputError(f"expected a KeyPairRecord, got {type(pair).__name__}")
    if not pair.id or not pair.public.strip():
        raise InvalidInputError("a key pair needs an id and a public key")


# --- the interface -----------------------------------------------------------------------------


class Storage(abc.ABC):
    """Kontrol's storage: kite registrations with TTLs, and Kontrol's key pairs.

    All methods are coroutines; implementations must be safe for many concurrent tasks on one
    event loop. Backends tied to asyncio (asyncpg, etcd clients) say so in their docs. Use
    ``async with storage:`` or call :meth:`aclose` when done.
    """

    # kites

    @abc.abstractmethod
    async def upsert(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> None:
        """Store (or replace) the registration of ``kite``, live for ``ttl`` seconds.

        Raises :class:`InvalidInputError` for bad input and :class:`IdConflictError` when the id
        is live under another username.
        """

    @abc.abstractmethod
    async def update(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> bool:
        """Refresh a live registration: new URL and key id, live for another ``ttl`` seconds.

        Returns ``False`` (and stores nothing) when ``kite`` has no live entry with this
        username; the caller then decides whether to :meth:`upsert`.
        """

    @abc.abstractmethod
    async def delete(self, kite: KiteIdentity) -> None:
        """Remove the registration of ``kite`` (by id and username); no error if absent."""

    @abc.abstractmethod
    async def get(self, query: Query) -> list[KiteRecord]:
        """The live registrations matching ``query`` (see the module docs); ``[]`` if none."""

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[ChangeFeed]:
        """The registry's change feed (see the module docs), live once entered::

            async with storage.watch() as feed:
                async for event in feed:
                    ...

        The feed ends with a :class:`StorageError` when the storage is closed. Backends
        without one raise :class:`WatchUnsupportedError`.
        """
        raise WatchUnsupportedError(f"{type(self).__name__} has no change feed")
        yield ChangeFeed()  # pragma: no cover - makes this an async generator

    # key pairs

    @abc.abstractmethod
    async def add_key(self, pair: KeyPairRecord) -> None:
        """Store an active key pair. Adding the same id and public key again is a no-op (a
        retired pair stays retired); the same id with another key raises
        :class:`InvalidInputError`."""

    @abc.abstractmethod
    async def delete_key(self, id_or_public: str) -> None:
        """Retire (soft-delete) a key pair given by id or public PEM; retiring twice is a no-op.
        Raises :class:`KeyNotFoundError` for an unknown pair."""

    @abc.abstractmethod
    async def get_key_by_id(self, key_id: str) -> KeyPairRecord:
        """The active pair ``key_id``; :class:`KeyDeletedError` if retired,
        :class:`KeyNotFoundError` if unknown."""

    @abc.abstractmethod
    async def get_key_by_public(self, public: str) -> KeyPairRecord:
        """The active pair whose public PEM is ``public`` (compared stripped);
        :class:`KeyDeletedError` if retired, :class:`KeyNotFoundError` if unknown."""

    async def is_valid(self, public: str) -> bool:
        """True when ``public`` belongs to an active (not retired) key pair."""
        try:
            await self.get_key_by_public(public)
        except (KeyNotFoundError, KeyDeletedError):
            return False
        return True

    # lifecycle

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections; the storage is unusable afterwards."""

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
