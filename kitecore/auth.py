"""The authenticator seam: who is calling, for methods that need to know.

A request whose method needs authentication carries ``authentication: {type, key}``; the
kite looks up the authenticator registered for ``type`` (plugins register them through
``kite_register_authenticators``) and asks it for the caller's username.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kitecore.request import Request


@runtime_checkable
class Authenticator(Protocol):
    """Checks one type of credentials (``token``, ``kiteKey``, ...)."""

    async def authenticate(self, request: Request) -> str:
        """Return the authenticated username of ``request``'s caller.

        Raise :class:`kitecore.AuthenticationError` with the reason to refuse; the kite
        answers ``authenticationError: <type>: <reason>``.
        """
        ...
