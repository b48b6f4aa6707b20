"""Kite-side registration and discovery through Kontrol.

``kite.kontrol_client`` (a :class:`KontrolClient`) registers the kite, finds others with
``get_kites`` and fetches tokens; the clients it returns carry a :class:`TokenRenewer`, and a
:class:`KeyRenewer` keeps the kite's copy of Kontrol's public key current across key rotations.
"""

from kitecore.discovery.claims import MalformedTokenError, token_expiry, unverified_claims
from kitecore.discovery.keys import KeyRenewer
from kitecore.discovery.kontrol import KontrolClient, RegisterHook
from kitecore.discovery.messages import KiteRecord, NoKitesError, RegisterResult, to_query
from kitecore.discovery.renewer import RENEW_BEFORE, RETRY_INTERVAL, TokenRenewer

__all__ = [
    "RENEW_BEFORE",
    "RETRY_INTERVAL",
    "KeyRenewer",
    "KiteRecord",
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
