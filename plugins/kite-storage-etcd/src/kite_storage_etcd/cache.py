"""The etcd storage's read cache: every live registration, kept up by the storage's etcd watch.

Like the Kubernetes apiserver's watch cache, :class:`KiteCache` is one range read of the id index
(``P/ids/``, whose values are whole records: :mod:`.layout`) at a revision ``R``, then every watch
event from ``R + 1`` on (:class:`~kite_storage_etcd.feed.EtcdFeed` feeds it). Writes made through
the same storage are applied as soon as etcd confirms them, with the revision etcd gave them, so
a Kontrol always reads its own writes.

Each entry remembers the revision of the write that made it; a delete leaves a *tombstone* with
its revision. A change older than what an id already shows is ignored, so the watch delivering a
write this storage already applied (or an older one, after a newer local write) changes nothing.
Tombstones are dropped once the watch has passed their revision: from then on the watch cannot
deliver anything older for that id.

The cache answers queries only while :attr:`KiteCache.live` (built and its watch open); the
storage reads etcd otherwise. It holds one entry per registered kite (the decoded record plus an
index by name); see the plugin README for the memory this costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kitecore.protocol.identity import Query
from kitecore.storage import KiteRecord

__all__ = ["KiteCache"]


@dataclass(slots=True)
class _Entry:
    revision: int
    record: KiteRecord


class KiteCache:
    """Live registrations by id (and by name), with the revision of their last change."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._by_name: dict[str, dict[str, KiteRecord]] = {}
        self._tombstones: dict[str, int] = {}
        #: The revision the cache is complete up to (the watch's progress).
        self.revision = 0
        #: True while queries may be served from here: built, and its watch open.
        self.live = False

    def __len__(self) -> int:
        return len(self._entries)

    # --- changes -------------------------------------------------------------------------

    def rebuild(self, records: Iterable[tuple[str, int, KiteRecord]], revision: int) -> None:
        """Replace the contents with a range read at ``revision`` (id, revision, record each).

        Changes applied meanwhile by this storage's own writes with a newer revision are kept.
        """
        newer = {k: e for k, e in self._entries.items() if e.revision > revision}
        gone = {k: r for k, r in self._tombstones.items() if r > revision}
        self._entries = {}
        self._by_name = {}
        self._tombstones = gone
        for kite_id, rev, record in records:
            if kite_id not in gone and kite_id not in newer:
                self._put(kite_id, _Entry(rev, record))
        for kite_id, entry in newer.items():
            self._put(kite_id, entry)
        self.revision = revision

    def apply_local(self, kite_id: str, revision: int, record: KiteRecord | None) -> None:
        """A write of this storage, confirmed by etcd at ``revision`` (``None``: deleted)."""
        if revision < self.revision:
            return  # the watch delivered it, or something newer, already
        self._apply(kite_id, revision, record)

    def apply_watched(self, kite_id: str, revision: int, record: KiteRecord | None) -> None:
        """A watch event at ``revision`` (``None``: deleted); the watch has reached it."""
        self._apply(kite_id, revision, record)
        self.reached(revision)

    def seen(self, kite_id: str, revision: int) -> bool:
        """True when ``kite_id`` already shows ``revision`` or a later change (a write of this
        storage that the watch now delivers: no need to decode it)."""
        return revision <= self._shown(kite_id)

    def reached(self, revision: int) -> None:
        """The watch has delivered everything up to ``revision``."""
        if revision > self.revision:
            self.revision = revision
            if self._tombstones:
                self._tombstones = {k: r for k, r in self._tombstones.items() if r >= revision}

    def entry(self, kite_id: str) -> tuple[int, KiteRecord] | None:
        """``kite_id``'s registration (the revision of its last write, the record), or None."""
        entry = self._entries.get(kite_id)
        return None if entry is None else (entry.revision, entry.record)

    def _shown(self, kite_id: str) -> int:
        """The revision of the last change ``kite_id`` shows (its entry's or its tombstone's;
        0 for neither)."""
        entry = self._entries.get(kite_id)
        return entry.revision if entry is not None else self._tombstones.get(kite_id, 0)

    def _apply(self, kite_id: str, revision: int, record: KiteRecord | None) -> None:
        if revision <= self._shown(kite_id):
            return
        if record is not None:
            self._tombstones.pop(kite_id, None)
            self._put(kite_id, _Entry(revision, record))
            return
        entry = self._entries.pop(kite_id, None)
        if entry is not None:
            self._unindex(kite_id, entry.record)
        self._tombstones[kite_id] = revision

    def _put(self, kite_id: str, entry: _Entry) -> None:
        old = self._entries.get(kite_id)
        if old is not None:
            self._unindex(kite_id, old.record)
        self._entries[kite_id] = entry
        self._by_name.setdefault(entry.record.kite.name, {})[kite_id] = entry.record

    def _unindex(self, kite_id: str, record: KiteRecord) -> None:
        named = self._by_name.get(record.kite.name)
        if named is not None:
            named.pop(kite_id, None)
            if not named:
                del self._by_name[record.kite.name]

    # --- queries -------------------------------------------------------------------------

    def get(self, query: Query) -> list[KiteRecord]:
        """The cached registrations matching ``query`` (already validated)."""
        if query.id:
            entry = self._entries.get(query.id)
            if entry is None:
                return []
            return [entry.record] if query.matches(entry.record.kite) else []
        if query.name:
            candidates: Iterable[KiteRecord] = self._by_name.get(query.name, {}).values()
        else:
            candidates = [entry.record for entry in self._entries.values()]
        return [record for record in candidates if query.matches(record.kite)]
