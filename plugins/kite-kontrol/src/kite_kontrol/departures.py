"""Kites leave the registry when the connection they registered over closes.

A kite that registered through ``register`` on a connection is deleted from storage as soon as
that connection drops, so watchers (:mod:`kite_kontrol.watch`) learn of the departure at once
instead of one TTL later. A kite that reconnects registers again (the kite side does so on every
reconnect). Kites registered over HTTP have no connection and leave by TTL only.

A kite that dropped its connection here and already registered again through another Kontrol
sharing the storage loses that entry until its next heartbeat there re-creates it (the
heartbeat path re-registers an entry it finds gone). ``KontrolSettings.deregister_on_disconnect``
turns this off (Go's behaviour: the entry lives until its TTL runs out).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import StorageError

if TYPE_CHECKING:
    from kitecore.client import Client

    from .server import Kontrol

__all__ = ["Departures"]

logger = logging.getLogger(__name__)


class Departures:
    """Remembers which kites registered over which connection; deletes them when it closes."""

    def __init__(self, kontrol: Kontrol) -> None:
        self._kontrol = kontrol
        self._by_client: dict[Client, dict[str, KiteIdentity]] = {}

    def __len__(self) -> int:
        return len(self._by_client)

    def track(self, client: Client, kite: KiteIdentity) -> None:
        """``kite`` registered over ``client``'s connection."""
        if not self._kontrol.settings.deregister_on_disconnect:
            return
        kites = self._by_client.get(client)
        if kites is None:
            if client.connection is None or client.connection.closed:
                return
            kites = self._by_client[client] = {}
            client.on_disconnect(self._gone)
        kites[kite.id] = kite

    async def _gone(self, client: Client) -> None:
        for kite in self._by_client.pop(client, {}).values():
            try:
                await self._kontrol.storage.delete(kite)
            except StorageError as exc:
                logger.warning("could not remove %s after it disconnected: %s", kite, exc)
            else:
                logger.info("kite disconnected, removed from the registry: %s", kite)
