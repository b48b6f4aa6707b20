"""Who may call ``registerMachine`` and get a kite.key (protocol.md §7.1).

``registerMachine`` needs no authentication (the caller has no kite.key yet), so a policy
decides. The caller sends ``[{"authType": ..., "username": ..., "secret": ...}]`` (every key
optional; kitectl's bare username string is accepted too); the username defaults to the one in
the caller's ``kite`` field. A policy raises :class:`MachineDenied` to refuse.

- :class:`SecretPolicy` (the default of ``python -m kite_kontrol``): the caller must send the
  registration secret Kontrol was started with (``"secret"``). The secret travels in the request,
  so serve Kontrol over TLS (or a trusted network) when using it.
- :class:`OpenPolicy`: anyone gets a kite.key for any username, for demos and tests.
- Any object with ``async def authorize(request, username, args)`` is a policy too.
- No policy (``None``): every call fails with ``no valid authentication key found`` (Go's answer
  when neither ``MachineAuthenticate`` nor ``MachineKeyPicker`` is set).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Protocol

from kitecore.request import Request

__all__ = ["MachineDenied", "MachinePolicy", "OpenPolicy", "SecretPolicy"]

logger = logging.getLogger(__name__)


class MachineDenied(Exception):
    """The policy refuses; the caller sees ``cannot authenticate user: <reason>``."""


class MachinePolicy(Protocol):
    """Decides whether a ``registerMachine`` caller gets a kite.key for ``username``."""

    async def authorize(self, request: Request, username: str, args: dict[str, Any]) -> None:
        """Return to allow; raise :class:`MachineDenied` to refuse."""


class SecretPolicy:
    """Allow callers that send the registration secret (compared in constant time)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the registration secret must not be empty")
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "SecretPolicy(<secret>)"

    async def authorize(self, request: Request, username: str, args: dict[str, Any]) -> None:
        given = args.get("secret")
        if not isinstance(given, str) or not given:
            raise MachineDenied("no registration secret given")
        if not hmac.compare_digest(given.encode(), self._secret):
            logger.warning("registerMachine for %s: wrong registration secret", username)
            raise MachineDenied("wrong registration secret")


class OpenPolicy:
    """Allow everyone (demos and tests only: anyone may then act as any username)."""

    def __repr__(self) -> str:
        return "OpenPolicy()"

    async def authorize(self, request: Request, username: str, args: dict[str, Any]) -> None:
        logger.info("registerMachine for %s allowed by the open policy", username)
