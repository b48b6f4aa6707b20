"""Kite-side registration and discovery through Kontrol.

``kite.kontrol_client`` (a :class:`KontrolClient`) registers the kite, finds others with
``get_kites``, fetches tokens, and watches the registry with ``watch_kites`` (a
:class:`KiteWatch` of :class:`KiteEvent`); the clients it returns carry a :class:`TokenRenewer`,
and a
:class:`KeyRenewer` keeps the kite's copy of Kontrol's public key current across key rotations.
"""

from kitecore.discovery.claims import MalformedTokenError, token_expiry, unverified_claims
from kitecore.discovery.keys import KeyRenewer
from kitecore.discovery.kontrol import KontrolClient, RegisterHook
from kitecore.discovery.messages import KiteRecord, NoKitesError, RegisterResult, to_query
from kitecore.discovery.renewer import RENEW_BEFORE, RETRY_INTERVAL, TokenRenewer
from kitecore.discovery.watch import KiteEvent, KiteWatch

__all__ = [
    "RENEW_BEFORE",
    "RETRY_INTERVAL",
    "KeyRenewer",
    "KiteEvent",
    "KiteRecord",
    "KiteWatch",
    "KontrolClient",
    "MalformedTokenError",
    "NoKitesError",
    "RegisterHook",
    "RegisterResult",
    "TokenRenewer",
    "to_query",
    "token_expiry",
    "unverified_claims",
]
