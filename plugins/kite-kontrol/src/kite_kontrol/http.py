"""Kontrol's HTTP endpoints (protocol.md §7.5): ``POST /register`` and ``GET /heartbeat``.

For kites that cannot keep a connection to Kontrol. Errors answer ``{"err": "..."}`` with status
400 (bad input, including JSON nested deeper than ``kitecore.protocol.MAX_JSON_DEPTH`` and
fields of the wrong type), 401 (kite.key refused), 429 (the user's kite quota is full) or 500
(storage only). Heartbeats are answered from storage, so any Kontrol sharing the storage can
take them (no sticky sessions needed).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from kitecore.http.server import HTTPRequest, HTTPResponse
from kitecore.protocol import load_json
from kitecore.protocol.errors import ArgumentError, GenericError, RequestLimitError
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import InvalidInputError, StorageError

from ._tokenlib import kite_auth_token
from .heartbeat import HTTPHeartbeats
from .registration import register_kite, url_argument

if TYPE_CHECKING:
    from kitecore.kite import Kite

    from .server import Kontrol

__all__ = ["HTTPEndpoints"]

logger = logging.getLogger(__name__)

_JSON = [("content-type", "application/json")]
_TEXT = [("content-type", "text/plain; charset=utf-8")]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _send_json(response: HTTPResponse, status: int, obj: Any) -> None:
    await response.send(status, _JSON, json.dumps(obj).encode())


class HTTPEndpoints:
    """The HTTP register and heartbeat handlers of one Kontrol."""

    def __init__(self, kontrol: Kontrol) -> None:
        self.kontrol = kontrol
        self.heartbeats = HTTPHeartbeats(kontrol.storage, kontrol.settings)

    def mount(self, kite: Kite) -> None:
        """Serve ``/register``, ``/heartbeat`` and ``/health`` on Kontrol's kite."""
        kite.handle_http("/register", self.register, methods=["POST"])
        kite.handle_http("/heartbeat", self.heartbeat, methods=["GET"])
        kite.handle_http("/health", self.health, methods=["GET"])

    async def register(self, request: HTTPRequest, response: HTTPResponse) -> None:
        """``POST /register`` ``{"url", "kite", "auth": {"type": "kiteKey", "key"}}``."""
        try:
            answer = await self._register(request.body)
        except _HTTPError as exc:
            await _send_json(response, exc.status, {"err": str(exc)})
            return
        await _send_json(response, 200, answer)

    async def _register(self, body: bytes) -> dict[str, Any]:
        try:
            data = load_json(body)  # bounded nesting: deep bodies are a 400, not a 500
        except ValueError as exc:
            raise _HTTPError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise _HTTPError(400, "the body must be a JSON object")
        auth = data.get("auth") or {}
        auth_type = auth.get("type") if isinstance(auth, dict) else None
        if auth_type != "kiteKey":
            raise _HTTPError(400, f"Unexpected authentication type: {auth_type or ''}")
        key = auth.get("key")
        if not isinstance(key, str):
            raise _HTTPError(400, "auth.key must be a string (the kite.key)")
        kontrol = self.kontrol
        try:
            verified = await kontrol.kite_key_authenticator.verify(key)
        except kite_auth_token.TokenError as exc:
            raise _HTTPError(401, f"kiteKey: {exc.reason}") from None
        try:
            claimed = KiteIdentity.from_wire(data.get("kite"))
            registration = await register_kite(
                storage=kontrol.storage,
                keyring=kontrol.keyring,
                settings=kontrol.settings,
                claimed=claimed,
                verified=verified,
                url=url_argument(data.get("url")),
                quota=kontrol.quota,
            )
        except RequestLimitError as exc:
            raise _HTTPError(429, exc.message) from None
        except (ArgumentError, GenericError) as exc:
            status = 500 if exc.message.startswith("internal error") else 400
            raise _HTTPError(status, exc.message) from None
        self.heartbeats.registered(registration.kite.id)
        return registration.result(kontrol.settings.heartbeat_interval)

    async def heartbeat(self, request: HTTPRequest, response: HTTPResponse) -> None:
        """``GET /heartbeat?id=ID`` -> ``pong`` or ``registeragain``."""
        kite_id = (request.query.get("id") or [""])[0]
        if not kite_id:
            await _send_json(response, 400, {"err": "query id is empty"})
            return
        limit = self.kontrol.settings.max_identity_field_bytes
        if len(kite_id.encode()) > limit:
            await _send_json(response, 400, {"err": f"query id is longer than {limit} bytes"})
            return
        try:
            answer = await self.heartbeats.beat(kite_id)
        except InvalidInputError as exc:
            await _send_json(response, 400, {"err": str(exc)})
            return
        except StorageError as exc:
            logger.error("heartbeat of %s: storage failed: %s", kite_id, exc)
            await _send_json(response, 500, {"err": "internal error - heartbeat"})
            return
        await response.send(200, _TEXT, answer.encode())

    async def health(self, request: HTTPRequest, response: HTTPResponse) -> None:
        """``GET /health`` -> 200 ``ok``, or 503 ``{"err": ...}`` while the storage fails."""
        error = self.kontrol.storage_error
        if self.kontrol.healthy:
            await response.send(200, _TEXT, b"ok")
        else:
            await _send_json(response, 503, {"err": f"storage unavailable: {error or 'starting'}"})
