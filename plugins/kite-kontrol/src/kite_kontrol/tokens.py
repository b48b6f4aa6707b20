"""Tokens Kontrol hands out with ``getKites`` and ``getToken`` (protocol.md §6.3).

Each token is signed with the key pair the target kite registered with (the current pair once
that one is retired) and cached by the plugin's :class:`~kite_auth_token.TokenMinter`.

Audience: from the query (``/user/env/name``, ``/user/env`` or ``/user``) when the query names a
username. A query without a username gets the target kite's own ``/user/env/name`` instead of
Go's root audience ``/``: Go's rule turned an ID-only (or region-only) query into a token every
kite accepts. The target kite accepts both, so Go's token renewer (ID-only ``getToken``) still
works, and a token never admits more kites than the one it was issued for.
"""

from __future__ import annotations

from kitecore.protocol.identity import Query
from kitecore.storage import KiteRecord

from ._tokenlib import kite_auth_token
from .keyring import Keyring
from .settings import KontrolSettings

__all__ = ["TokenIssuer", "audience_for"]


def audience_for(query: Query, record: KiteRecord) -> str:
    """The ``aud`` claim of a token for ``record`` found by ``query`` (see the module docs)."""
    if query.username:
        return kite_auth_token.audience_for_query(query.username, query.environment, query.name)
    kite = record.kite
    return kite_auth_token.audience_for_query(kite.username, kite.environment, kite.name)


class TokenIssuer:
    """Mints (and caches) tokens for requesters to call the kites they found."""

    def __init__(self, keyring: Keyring, settings: KontrolSettings) -> None:
        self._keyring = keyring
        self._minter = kite_auth_token.TokenMinter(
            ttl=settings.token_ttl,
            leeway=settings.token_leeway,
            not_before=not settings.token_no_nbf,
        )

    async def token_for(
        self, record: KiteRecord, query: Query, *, subject: str, issuer: str, force: bool = False
    ) -> str:
        """A token letting ``subject`` call the kite of ``record``."""
        pair = await self._keyring.pair_for_id(record.key_id)
        return self._minter.token(
            audience=audience_for(query, record),
            subject=subject,
            issuer=issuer,
            key_pair=self._keyring.signing_pair(pair),
            force=force,
        )

    def clear(self) -> None:
        """Forget cached tokens (after a key rotation)."""
        self._minter.clear()
