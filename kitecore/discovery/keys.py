"""Keeping a registered kite's copy of Kontrol's public key current (protocol.md §6.4).

A kite verifies the tokens callers present with ``config.kontrol_key``. When Kontrol rotates its
key pair while the kite stays connected, new tokens are signed with the new key and the kite
would refuse them (``token is expired``) until it reconnects. :class:`KeyRenewer` closes that gap
in two ways:

* **on demand**: :meth:`KeyRenewer.install` wraps the kite's ``token`` authenticator. When it
  refuses a token that was issued by our Kontrol user and has not expired yet, the kite asks
  Kontrol for its current key (``getKey``), at most once per ``refresh_interval`` seconds and
  never twice at a time; if the key changed, the token is checked once more with the new key.
  A caller therefore sees the rotation at its first call, and forged tokens cost at most one
  ``getKey`` per ``refresh_interval``.
* **polling** (Go's ``NewKeyRenewer``): :meth:`KeyRenewer.run` calls ``getKey`` every
  ``interval`` seconds, so the key also changes on kites nobody calls.

The kite's kite.key, still signed by the retired pair (which Kontrol keeps trusting), is
re-signed by Kontrol at the kite's next registration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from kitecore.discovery.claims import MalformedTokenError, unverified_claims
from kitecore.protocol.errors import AuthenticationError

if TYPE_CHECKING:
    from kitecore.auth import Authenticator
    from kitecore.discovery.kontrol import KontrolClient
    from kitecore.request import Request

__all__ = ["KEY_REFRESH_INTERVAL", "KEY_RENEW_INTERVAL", "KeyRefreshingAuthenticator", "KeyRenewer"]

logger = logging.getLogger(__name__)

#: Seconds between two ``getKey`` polls of a registered kite.
KEY_RENEW_INTERVAL = 300.0
#: Minimum seconds between two on-demand ``getKey`` calls caused by refused tokens.
KEY_REFRESH_INTERVAL = 10.0


class KeyRenewer:
    """Refreshes ``kontrol.kite.config.kontrol_key`` from Kontrol's ``getKey``.

    ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(
        self,
        kontrol: KontrolClient,
        *,
        interval: float = KEY_RENEW_INTERVAL,
        refresh_interval: float = KEY_REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError("the key renewal interval must be positive")
        if refresh_interval < 0:
            raise ValueError("the key refresh interval must not be negative")
        self.kontrol = kontrol
        self.interval = interval
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock_: anyio.Lock | None = None
        self._last_attempt: float | None = None
        self._generation = 0
        self._last_changed = False
        #: How many times the key was found changed (for tests and metrics).
        self.changes = 0

    @property
    def _lock(self) -> anyio.Lock:
        # made on first use: the renewer may be created before the event loop runs
        if self._lock_ is None:
            self._lock_ = anyio.Lock()
        return self._lock_

    async def refresh(self) -> bool:
        """Fetch Kontrol's key now; True when it differs from the one the kite had.

        Callers arriving while a refresh runs wait for it and share its outcome. Errors of
        the ``getKey`` call propagate.
        """
        generation = self._generation
        async with self._lock:
            if self._generation != generation:  # a refresh finished while we waited
                return self._last_changed
            return await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        config = self.kontrol.kite.config
        old = config.kontrol_key
        self._last_attempt = self._clock()
        self._last_changed = False
        try:
            new = await self.kontrol.get_key()  # also stores it in config.kontrol_key
        finally:
            self._generation += 1
        changed = new.strip() != old.strip()
        if changed:
            self.changes += 1
            logger.info("Kontrol's public key changed (key rotation); using the new one")
        self._last_changed = changed
        return changed

    async def refresh_if_due(self) -> bool:
        """Like :meth:`refresh`, unless one was tried less than ``refresh_interval`` seconds ago
        (then False without calling Kontrol). Never raises: failures are logged."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return self._last_changed
            last = self._last_attempt
            if last is not None and self._clock() - last < self.refresh_interval:
                return False
            try:
                return await self._refresh_locked()
            except Exception as exc:
                logger.warning("could not fetch Kontrol's public key: %s", exc)
                return False

    async def run(self) -> None:
        """Poll ``getKey`` every ``interval`` seconds until cancelled."""
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception as exc:
                logger.warning("polling Kontrol's public key failed (will retry): %s", exc)

    def install(self) -> None:
        """Wrap the kite's ``token`` authenticator (once) so a refused token triggers
        :meth:`refresh_if_due`. Does nothing when the kite has no ``token`` authenticator."""
        authenticators = self.kontrol.kite.authenticators
        inner = authenticators.get("token")
        if inner is None:
            return
        if isinstance(inner, KeyRefreshingAuthenticator):
            inner.renewer = self
            return
        authenticators["token"] = KeyRefreshingAuthenticator(inner, self)


class KeyRefreshingAuthenticator:
    """A ``token`` authenticator that refreshes Kontrol's key once before refusing a token.

    Only tokens worth it trigger a refresh: issued by the kite's ``config.kontrol_user`` and not
    past their ``exp`` (an expired token stays expired whatever the key).
    """

    def __init__(self, inner: Authenticator, renewer: KeyRenewer) -> None:
        self.inner = inner
        self.renewer = renewer

    def __repr__(self) -> str:
        return f"<KeyRefreshingAuthenticator around {self.inner!r}>"

    async def authenticate(self, request: Request) -> str:
        """The inner authenticator's answer; on refusal, maybe refresh the key and retry once."""
        try:
            return await self.inner.authenticate(request)
        except AuthenticationError:
            token = request.auth.key if request.auth is not None else ""
            if not self._worth_refreshing(token) or not await self.renewer.refresh_if_due():
                raise
        return await self.inner.authenticate(request)

    def _worth_refreshing(self, token: str) -> bool:
        try:
            claims = unverified_claims(token)
        except MalformedTokenError:
            return False
        config = self.renewer.kontrol.kite.config
        if not config.kontrol_user or claims.get("iss") != config.kontrol_user:
            return False
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return False
        return exp > time.time()
