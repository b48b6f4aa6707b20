"""Concurrent writes sent to a storage server together (group commit), for storage backends.

A write to etcd or PostgreSQL is a round trip and a commit (a raft proposal, a WAL flush); on
a busy Kontrol these cost more than everything else a registration does. :class:`Batcher` sends
at most one batch at a time and collects what arrives meanwhile into the next one: alone, a
write goes at once; under load, many share a round trip and a commit.

No task of its own: the caller whose write finds nobody sending sends (shielded from
cancellation: a batch in flight is seen through) until its own write is done, then hands the
role to the next caller waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

__all__ = ["MAX_BATCH", "Batcher"]

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

#: Items per batch at most (etcd refuses more than ``--max-txn-ops``, 128 by default,
#: operations on one level of a transaction).
MAX_BATCH = 64


class _Slot(Generic[Item, Outcome]):
    """One write waiting: its item, then its outcome or error."""

    __slots__ = ("abandoned", "done", "error", "event", "item", "lead", "outcome")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.event = anyio.Event()
        self.done = False
        self.lead = False  # promoted: send the next batches
        self.abandoned = False  # the caller was cancelled before its write was sent
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class Batcher(Generic[Item, Outcome]):
    """Feeds items to ``send(items) -> outcomes`` (one outcome per item, in order), one call at
    a time. Items of one call share ``group(item)`` and no two share ``key(item)`` (etcd refuses
    a transaction that writes one key twice, PostgreSQL an upsert that touches a row twice); the
    others wait for the next call."""

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Outcome]]],
        *,
        group: Callable[[Item], Hashable],
        key: Callable[[Item], Hashable],
    ) -> None:
        self._send = send
        self._group = group
        self._key = key
        self._queue: list[_Slot[Item, Outcome]] = []
        self._sending = False

    async def submit(self, item: Item) -> Outcome:
        """Write ``item`` with the next call; its outcome, or the call's exception."""
        slot: _Slot[Item, Outcome] = _Slot(item)
        self._queue.append(slot)
        if self._sending:
            try:
                await slot.event.wait()
            except BaseException:
                if not slot.done:  # never sent: nobody is to send it or promote it now
                    slot.abandoned = True
                if slot.lead:  # promoted as it was cancelled: pass the role on
                    self._hand_over()
                raise
        else:
            self._sending = True
            slot.lead = True
        if slot.lead:
            await self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.outcome  # type: ignore[return-value]

    async def _lead(self, mine: _Slot[Item, Outcome]) -> None:
        """Send batches until ``mine`` is written, then hand the role over."""
        try:
            with anyio.CancelScope(shield=True):
                while not mine.done:
                    batch = self._take()
                    try:
                        outcomes = await self._send([slot.item for slot in batch])
                    except Exception as exc:
                        for slot in batch:
                            slot.error = exc
                    except BaseException as exc:
                        # Not an error of the batch (an interrupt, a generator closing): it
                        # is the sender's to raise; the others learn their write's fate is
                        # unknown instead of waiting for ever.
                        self._abort(batch, mine, exc)
                        raise
                    else:
                        for slot, outcome in zip(batch, outcomes, strict=True):
                            slot.outcome = outcome
                    for slot in batch:
                        slot.done = True
                        if slot is not mine:
                            slot.event.set()
        finally:
            self._hand_over()

    @staticmethod
    def _abort(
        batch: list[_Slot[Item, Outcome]], mine: _Slot[Item, Outcome], exc: BaseException
    ) -> None:
        """Wake the batch's other writers with an error: the call was interrupted by ``exc``."""
        for slot in batch:
            slot.done = True
            if slot is not mine:
                slot.error = RuntimeError(
                    f"the storage write was interrupted ({type(exc).__name__}); "
                    "it may or may not have been applied"
                )
                slot.error.__cause__ = exc
                slot.event.set()

    def _take(self) -> list[_Slot[Item, Outcome]]:
        """The next call's items, taken from the queue."""
        taken: list[_Slot[Item, Outcome]] = []
        left: list[_Slot[Item, Outcome]] = []
        keys: set[Hashable] = set()
        group: Hashable = None
        for slot in self._queue:
            if slot.abandoned:
                continue
            if len(taken) >= MAX_BATCH:
                left.append(slot)
                continue
            key = self._key(slot.item)
            if not taken:
                group = self._group(slot.item)
            elif key in keys or self._group(slot.item) != group:
                left.append(slot)
                continue
            keys.add(key)
            taken.append(slot)
        self._queue = left
        return taken

    def _hand_over(self) -> None:
        """The sender is done: the first write still waiting sends next, or nobody sends."""
        for slot in self._queue:
            if not slot.abandoned:
                slot.lead = True
                slot.event.set()
                return
        self._queue = []
        self._sending = False
