"""Keeping a Kontrol token fresh on a client (protocol.md §6.4).

A :class:`TokenRenewer` is attached to every client :meth:`KontrolClient.get_kites` returns.
While the client is connected it renews the token ``renew_before`` seconds before it expires,
retrying every ``retry_interval`` seconds on failure (and giving up when Kontrol no longer
knows the kite). When a call fails with ``token is expired`` (the target kite does not accept
the token, e.g. after a Kontrol key rotation) it renews at once with ``force`` and the client
retries the call once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from kitecore.discovery.claims import MalformedTokenError, token_expiry
from kitecore.discovery.messages import NoKitesError
from kitecore.protocol.envelope import Authentication
from kitecore.protocol.identity import Query

if TYPE_CHECKING:
    from kitecore.client import Client
    from kitecore.discovery.kontrol import KontrolClient

__all__ = ["RENEW_BEFORE", "RETRY_INTERVAL", "TokenRenewer"]

logger = logging.getLogger(__name__)

#: Seconds before ``exp`` at which a token is renewed (Go's ``renewBefore``).
RENEW_BEFORE = 30.0
#: Seconds between attempts after a failed renewal (Go's ``retryInterval``).
RETRY_INTERVAL = 10.0


class TokenRenewer:
    """Renews the ``token`` authentication of ``client`` through ``kontrol``.

    Create it, then :meth:`install` it: the renewal loop runs while the client is connected,
    and the client's token-expired hook renews on demand. ``clock`` gives wall-clock seconds
    (tokens carry wall-clock ``exp``); it is injectable for tests.
    """

    def __init__(
        self,
        kontrol: KontrolClient,
        client: Client,
        *,
        renew_before: float = RENEW_BEFORE,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client.remote_kite is None or not client.remote_kite.id:
            raise ValueError("a token renewer needs the remote kite's id")
        self.kontrol = kontrol
        self.client = client
        self.renew_before = renew_before
        self.retry_interval = retry_interval
        self._clock = clock
        self._scope: anyio.CancelScope | None = None
        self._lock_: anyio.Lock | None = None

    def install(self) -> TokenRenewer:
        """Hook into the client's connect, disconnect and token-expired events."""
        self.client.on_connect(self._start)
        self.client.on_disconnect(self._stop)
        self.client.on_token_expire(self._on_token_expired)
        return self

    @property
    def _lock(self) -> anyio.Lock:
        # made on first use: the renewer may be created before the event loop runs
        if self._lock_ is None:
            self._lock_ = anyio.Lock()
        return self._lock_

    @property
    def token(self) -> str:
        """The token the client currently sends ("" if none)."""
        auth = self.client.auth
        return auth.key if auth is not None and auth.type == "token" else ""

    async def renew(self, *, force: bool = False) -> str:
        """Ask Kontrol for a new token for the remote kite and make the client use it.

        The query names only the kite's id (Kontrol then issues a token with the root
        audience, as Go's renewer does). Kontrol errors propagate as :class:`KiteError`.
        """
        async with self._lock:
            return await self._fetch(force)

    async def _fetch(self, force: bool) -> str:
        assert self.client.remote_kite is not None
        token = await self.kontrol.get_token(Query(id=self.client.remote_kite.id), force=force)
        self.client.auth = Authentication("token", token)
        logger.debug("renewed the token for %r", self.client)
        return token

    def next_renewal_delay(self) -> float | None:
        """Seconds until the current token should be renewed; ``None`` if it cannot be told."""
        try:
            expiry = token_expiry(self.token)
        except MalformedTokenError as exc:
            logger.warning("%r: token is unreadable, not renewing it: %s", self.client, exc)
            return None
        if expiry is None:
            return None
        return max(0.0, expiry - self.renew_before - self._clock())

    # ------------------------------------------------------------ hooks

    def _start(self, client: Client) -> None:
        if self._scope is not None:
            return
        self._scope = anyio.CancelScope()
        client._task_group().start_soon(self._run, self._scope)

    def _stop(self, client: Client) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.cancel()

    async def _on_token_expired(self, client: Client) -> None:
        stale = self.token
        async with self._lock:
            if self.token != stale:
                return  # another call's renewal already replaced the token
            logger.info("%r: the token was refused as expired; renewing it now", client)
            try:
                await self._fetch(force=True)
            except Exception as exc:
                logger.warning("%r: could not renew the refused token: %s", client, exc)

    async def _run(self, scope: anyio.CancelScope) -> None:
        with scope:
            delay = self.next_renewal_delay()
            while delay is not None:
                await anyio.sleep(delay)
                try:
                    await self.renew()
                except NoKitesError as exc:
                    logger.info("%r: stopped renewing the token: %s", self.client, exc)
                    return
                except Exception as exc:
                    logger.warning(
                        "%r: token renewal failed, retrying in %gs: %s",
                        self.client,
                        self.retry_interval,
                        exc,
                    )
                    delay = self.retry_interval
                    continue
                delay = self.next_renewal_delay()
