"""Concurrent registrations written by one etcd transaction (group commit).

Each etcd transaction is a gRPC round trip and a raft proposal (a WAL write); on a busy Kontrol
they cost more than everything else a registration does. :class:`Batcher` sends at most one
transaction at a time and collects what arrives meanwhile into the next one: alone, a
registration goes at once; under load, many share a transaction, each in a nested transaction of
its own, so each keeps its own condition and its own outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["MAX_BATCH", "Batcher"]

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

#: Items per transaction at most (etcd refuses more than ``--max-txn-ops``, 128 by default,
#: operations on one level of a transaction).
MAX_BATCH = 64


class Batcher(Generic[Item, Outcome]):
    """Feeds items to ``send(items) -> outcomes`` (one outcome per item, in order), one call at
    a time. Items of one call share ``group(item)`` and no two share ``key(item)`` (etcd refuses
    a transaction that writes one key twice); the others wait for the next call."""

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
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        """Send ``item`` with the next call; its outcome, or the call's exception."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await future

    def _take(self) -> list[tuple[Item, asyncio.Future[Outcome]]]:
        """The next call's items (skipping those whose caller gave up)."""
        taken: list[tuple[Item, asyncio.Future[Outcome]]] = []
        left: list[tuple[Item, asyncio.Future[Outcome]]] = []
        keys: set[Hashable] = set()
        group: Hashable = None
        for entry in self._queue:
            item, future = entry
            if future.done():
                continue
            if len(taken) >= MAX_BATCH:
                left.append(entry)
                continue
            key = self._key(item)
            if not taken:
                group = self._group(item)
            elif key in keys or self._group(item) != group:
                left.append(entry)
                continue
            keys.add(key)
            taken.append(entry)
        self._queue = left
        return taken

    async def _run(self) -> None:
        try:
            while batch := self._take():
                try:
                    outcomes = await self._send([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise  # cancelled: the storage is closing
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._task = None
            for _, future in self._queue:  # only when cancelled
                if not future.done():
                    future.set_exception(asyncio.CancelledError())

    async def aclose(self) -> None:
        """Stop sending; waiting callers get :class:`asyncio.CancelledError`."""
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
