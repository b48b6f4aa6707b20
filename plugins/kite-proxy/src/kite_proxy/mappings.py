"""Which kite each proxy serves: kite id → the connection it registered on.

A kite registers for its own id only: the id the connection used on its first call (pinned by
the core as ``client.remote_kite``). A second connection claiming an id that a live connection
holds is refused, and every mapping of a connection goes when that connection ends. A
registration connection is kept however long it stays idle (``Connection.keep_when_idle``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kitecore import Client, GenericError, Request

__all__ = ["Mapping", "MappingTable", "caller_kite_id"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mapping:
    """One registered kite: its connection to the proxy and what the proxy keeps for it."""

    kite_id: str
    client: Client
    target: Any


def caller_kite_id(request: Request) -> str:
    """The kite id of the caller of ``request``: the one its connection is pinned to.

    Refuses a call that names another kite id than the connection's first call did.
    """
    pinned = request.client.remote_kite
    claimed = request.kite
    if pinned is None or not pinned.id:
        raise GenericError("register needs the caller's kite identity (the request's 'kite')")
    if claimed is not None and claimed.id != pinned.id:
        raise GenericError("a connection can register only the kite it first called as")
    return pinned.id


class MappingTable:
    """kite id → :class:`Mapping`, one owner connection per id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Mapping] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, kite_id: object) -> bool:
        return kite_id in self._by_id

    def get(self, kite_id: str) -> Mapping | None:
        """The live mapping of ``kite_id``, or None."""
        mapping = self._by_id.get(kite_id)
        if mapping is not None and not mapping.client.connected:
            self._by_id.pop(kite_id, None)
            return None
        return mapping

    def add(self, kite_id: str, client: Client, target: Any) -> Mapping:
        """Map ``kite_id`` to ``client``; refused if another live connection holds the id."""
        held = self.get(kite_id)
        if held is not None and held.client is not client:
            raise GenericError(f"kite id {kite_id} is already registered by another connection")
        mapping = Mapping(kite_id, client, target)
        self._by_id[kite_id] = mapping
        if client.connection is not None:
            # a registered kite stays connected without calling: never closed for being idle
            client.connection.keep_when_idle = True
        return mapping

    def forget(self, client: Client) -> list[str]:
        """Drop every mapping of ``client`` (its connection ended); returns their ids."""
        gone = [kid for kid, mapping in self._by_id.items() if mapping.client is client]
        for kite_id in gone:
            del self._by_id[kite_id]
            logger.info("kite %s left the proxy", kite_id)
        return gone
