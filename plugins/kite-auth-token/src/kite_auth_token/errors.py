"""Errors raised by the token and kite.key layer.

Verification failures carry the exact reason a Go kite gives, because peers act on those texts:
a Go client renews its token when an ``authenticationError`` message contains "token is expired".
"""

from __future__ import annotations

__all__ = ["KeyFormatError", "KiteKeyNotFoundError", "TokenError"]


class TokenError(Exception):
    """A token or kite.key was rejected; ``str(err)`` is the reason a Go kite would report.

    The later authenticator turns this into a wire ``authenticationError`` with the same message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: The human-readable rejection reason (also ``str(self)``).
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class KeyFormatError(ValueError):
    """A PEM text is not the kind of RSA key that was expected (caller or configuration error)."""


class KiteKeyNotFoundError(FileNotFoundError):
    """The kite.key file does not exist (or is empty) where it was looked for."""
