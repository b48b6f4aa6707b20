"""Kontrol's RPC methods: register, getKites, getToken, getKey, registerMachine (protocol.md §7.1),
and cancelWatcher (§15; the watches themselves live in :mod:`kite_kontrol.watch`).

Argument and result shapes, and error texts, are Go Kontrol's: Go clients, kite.js and the kite
side of this project all speak to these methods.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from kitecore.protocol.errors import ArgumentError, AuthenticationError, GenericError
from kitecore.protocol.identity import Query
from kitecore.request import Request
from kitecore.storage import InvalidInputError, KiteRecord, StorageError

from .auth import KITE_KEY_CONTEXT, VerifiedKiteKey
from .heartbeat import HeartbeatTracker
from .limits import check_identity_sizes, peer_host
from .machine import MachineDenied
from .registration import register_kite, url_argument
from .watch import watch_function

if TYPE_CHECKING:
    from .server import Kontrol

__all__ = ["KontrolHandlers"]

logger = logging.getLogger(__name__)


def _seconds(value: float) -> float:
    """Whole seconds as an int on the wire (Go sends ``10``), fractions as they are."""
    return int(value) if float(value).is_integer() else value


def _require_kite_key(r: Request) -> VerifiedKiteKey:
    """The verified kite.key of a kiteKey-authenticated request, else Go's error."""
    auth_type = r.auth.type if r.auth is not None else ""
    if auth_type != "kiteKey":
        raise AuthenticationError(f"Unexpected authentication type: {auth_type}")
    verified = r.context.get(KITE_KEY_CONTEXT)
    if not isinstance(verified, VerifiedKiteKey):  # none: the method's auth was turned off
        raise AuthenticationError("No authentication information is provided")
    return verified


def _query_from(obj: Any, kontrol: Kontrol) -> Query:
    try:
        query = Query.from_wire(obj)
    except ArgumentError as exc:
        raise GenericError(f"invalid query: {exc.message}") from None
    check_identity_sizes(query, kontrol.settings)
    return query


class KontrolHandlers:
    """The method handlers of one :class:`~kite_kontrol.server.Kontrol`."""

    def __init__(self, kontrol: Kontrol) -> None:
        self.kontrol = kontrol

    def install(self) -> None:
        """Register the methods on Kontrol's kite."""
        kite = self.kontrol.kite
        kite.handle("register", self.register, auth=True)
        kite.handle("getKites", self.get_kites, auth=True)
        kite.handle("getToken", self.get_token, auth=True)
        kite.handle("getKey", self.get_key, auth=True)
        kite.handle("registerMachine", self.register_machine, auth=False)
        kite.handle("cancelWatcher", self.cancel_watcher, auth=True)

    async def _get(self, query: Query) -> list[KiteRecord]:
        try:
            return await self.kontrol.storage.get(query)
        except InvalidInputError as exc:
            raise GenericError(f"invalid query: {exc}") from None
        except StorageError as exc:
            logger.error("storage get %s failed: %s", query, exc)
            raise GenericError("internal error - storage") from None

    # --- register ------------------------------------------------------------------------

    async def register(self, r: Request) -> dict[str, Any]:
        """``register [{"url": URL}]`` (or kite.js's ``[URL]``) -> ``{"url", "heartbeatInterval"}``.

        Then Kontrol calls ``kite.heartbeat [interval, ping]`` back on the same connection, in
        the background (the answer does not wait for it), and refreshes the registration as
        pings arrive.
        """
        url = url_argument(r.args[0] if len(r.args) else None)
        verified = _require_kite_key(r)
        kontrol = self.kontrol
        registration = await register_kite(
            storage=kontrol.storage,
            keyring=kontrol.keyring,
            settings=kontrol.settings,
            claimed=r.client.remote_kite or r.kite,
            verified=verified,
            url=url,
            quota=kontrol.quota,
        )
        kontrol.departures.track(r.client, registration.kite)
        connection = r.client.connection
        if connection is not None:
            settings = kontrol.settings
            tracker = HeartbeatTracker(
                kontrol.storage, registration.kite, registration.value, settings, connection.spawn
            )
            interval = _seconds(settings.heartbeat_interval)
            kontrol.heartbeat_calls.ask(r.client, registration.kite, tracker, interval)
        # Over RPC Kontrol drives the heartbeat itself, so the kite is told 0 (as Go does).
        return registration.result(0)

    # --- discovery and tokens ------------------------------------------------------------

    async def get_kites(self, r: Request) -> dict[str, Any]:
        """``getKites [{"query": {...}}]`` -> ``{"kites": [{"kite", "url", "keyId", "token"}]}``.

        With a function in ``watchHandler`` (kite.js) or ``watchCallback`` (Go), the answer
        also carries a ``watcherID`` and the function receives the query's changes
        (:mod:`kite_kontrol.watch`).
        """
        args = r.args.mapping(0)
        raw_query = args.get("query")
        if not isinstance(raw_query, dict):
            raise GenericError("invalid query: no query object given")
        query = _query_from(raw_query, self.kontrol)
        handler = watch_function(args)
        if handler is not None:
            return await self._get_kites_watching(r, query, handler)
        records = await self._get(query)
        random.shuffle(records)
        kontrol = self.kontrol
        kites = [
            record.to_wire(
                await kontrol.tokens.token_for(
                    record, query, subject=r.username, issuer=kontrol.username
                )
            )
            for record in records
        ]
        return {"kites": kites}

    async def _get_kites_watching(self, r: Request, query: Query, handler: Any) -> dict[str, Any]:
        hub = self.kontrol.watch
        await hub.open_feed()
        watcher = hub.add(r.client, handler, query, r.username)
        try:
            found = await self._answer(r, query)
        except BaseException:
            hub.remove(watcher)
            raise
        watcher.known.update((record.kite.id, record.kite) for record, _ in found)
        connection = r.client.connection
        if connection is None:
            hub.remove(watcher)
            raise GenericError("the connection closed")
        # runs after this answer was written: events never overtake it
        connection.spawn(watcher.activate)
        return {"kites": [entry for _, entry in found], "watcherID": watcher.id}

    async def _answer(self, r: Request, query: Query) -> list[tuple[KiteRecord, dict[str, Any]]]:
        records = await self._get(query)
        random.shuffle(records)
        kontrol = self.kontrol
        found = []
        for record in records:
            token = await kontrol.tokens.token_for(
                record, query, subject=r.username, issuer=kontrol.username
            )
            found.append((record, record.to_wire(token)))
        return found

    async def cancel_watcher(self, r: Request) -> None:
        """``cancelWatcher [id]`` -> ``null``; only the watcher's own connection may cancel it."""
        self.kontrol.watch.cancel(r.args[0] if len(r.args) else None, r.client)

    async def get_token(self, r: Request) -> str:
        """``getToken [{query fields..., "force": bool}]`` -> a token for the one matching kite."""
        args = r.args.mapping(0)
        query = _query_from(args, self.kontrol)
        records = await self._get(query)
        if not records:
            raise GenericError("no kites found")
        if len(records) > 1:
            raise GenericError("query matches more than one kite")
        kontrol = self.kontrol
        return await kontrol.tokens.token_for(
            records[0],
            query,
            subject=r.username,
            issuer=kontrol.username,
            force=args.get("force") is True,
        )

    async def get_key(self, r: Request) -> str:
        """``getKey`` -> the public key that verifies tokens for the caller (kiteKey only)."""
        verified = _require_kite_key(r)
        if verified.pair.retired:
            return self.kontrol.keyring.current.public
        return verified.pair.public

    # --- machines ------------------------------------------------------------------------

    async def register_machine(self, r: Request) -> str:
        """``registerMachine [{"authType", "username", "secret"}]`` -> a new kite.key JWT."""
        raw = r.args[0] if len(r.args) else {}
        if isinstance(raw, str):  # kitectl's bare username
            raw = {"username": raw}
        if not isinstance(raw, dict):
            raise ArgumentError("registerMachine expects an object argument")
        username = raw.get("username") or (r.kite.username if r.kite is not None else "")
        kontrol = self.kontrol
        limit = kontrol.settings.max_identity_field_bytes
        if isinstance(username, str) and len(username.encode()) > limit:
            raise ArgumentError(f"username is longer than {limit} bytes")
        if not isinstance(username, str) or not username or "/" in username:
            raise GenericError(f"cannot authenticate user: invalid username {username!r}")
        policy = kontrol.machine_policy
        if policy is None:
            raise GenericError("no valid authentication key found")
        failures = kontrol.machine_failures
        connection = r.client.connection
        host = peer_host(connection.peer.remote_address) if connection is not None else ""
        keys = (f"host:{host}", f"user:{username}")
        locked = max(failures.locked_for(key) for key in keys)
        if locked:
            raise GenericError(
                "cannot authenticate user: too many failed attempts, "
                f"try again in {int(locked) + 1} s"
            )
        try:
            await policy.authorize(r, username, raw)
        except MachineDenied as exc:
            for key in keys:
                failures.failed(key)
            raise GenericError(f"cannot authenticate user: {exc}") from None
        for key in keys:
            failures.succeeded(key)
        logger.info("registerMachine: issuing a kite.key for %s", username)
        return kontrol.create_kite_key(username)
