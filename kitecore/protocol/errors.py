"""Kite's error objects, as they travel on the wire and as Python exceptions.

A Kite error is the JSON object ``{"type", "message", "code", "id"}`` (all four keys always
present, protocol.md §2.3). Each known ``type`` maps to one :class:`KiteError` subclass so callers
can ``except AuthenticationError``; unknown types survive a round trip as a plain
:class:`KiteError` carrying the original type string.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, ClassVar

__all__ = [
    "ArgumentError",
    "AuthenticationError",
    "CallbackLimitError",
    "DisconnectError",
    "GenericError",
    "InvalidResponseError",
    "KiteError",
    "KiteTimeoutError",
    "MethodNotFoundError",
    "ProtocolError",
    "RequestLimitError",
    "SendError",
    "ShuttingDownError",
]


class KiteError(Exception):
    """An error in Kite's wire format.

    ``type`` is the wire type (``"genericError"`` unless a subclass or the ``type`` argument
    says otherwise), ``message`` the human text, ``code`` an application code and ``id`` the
    id of the request that failed (both often empty).
    """

    #: The wire ``type`` that instances of this class carry unless told otherwise.
    wire_type: ClassVar[str] = "genericError"

    type: str
    message: str
    code: str
    id: str

    def __init__(
        self, message: str = "", *, code: str = "", id: str = "", type: str | None = None
    ) -> None:
        if not isinstance(message, str):  # e.g. GenericError(exc) from a handler
            message = str(message)
        super().__init__(message)
        self.type = self.wire_type if type is None else type
        self.message = message
        self.code = code
        self.id = id

    def __str__(self) -> str:
        # Go's kite.Error.Error(): "<type>: <message> (<id>)".
        text = self.message
        if self.type and self.type != "genericError":
            text = f"{self.type}: {text}"
        if self.id:
            text = f"{text} ({self.id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(type={self.type!r}, message={self.message!r}, "
            f"code={self.code!r}, id={self.id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes would be lost by Exception's default pickling.
        return (_rebuild, (type(self), self.message, self.code, self.id, self.type))

    def to_wire(self) -> dict[str, str]:
        """Return the error as Kite's JSON object (all four keys, in Go's order)."""
        return {"type": self.type, "message": self.message, "code": self.code, "id": self.id}

    @classmethod
    def from_wire(cls, obj: Any) -> KiteError:
        """Build the matching exception from an error value received from a peer.

        Accepts Kite's ``{type, message, code, id}`` object (missing keys tolerated), a
        JavaScript ``Error`` serialised as ``{message, name, ...}``, a bare string, or any other
        JSON value; the last three give a :class:`GenericError`.
        """
        if isinstance(obj, KiteError):
            return obj
        if isinstance(obj, dict):
            return _from_dict(obj)
        if isinstance(obj, str):
            return GenericError(obj)
        if obj is None:
            return GenericError("remote sent an empty error")
        return GenericError(_compact(obj))


def _rebuild(cls: type[KiteError], message: str, code: str, id: str, type: str) -> KiteError:
    return cls(message, code=code, id=id, type=type)


def _compact(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(obj)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _compact(value)


def _from_dict(obj: dict[str, Any]) -> KiteError:
    wire_type = obj.get("type")
    code = _text(obj.get("code"))
    id = _text(obj.get("id"))
    if "message" in obj:
        message = _text(obj["message"])
    else:
        message = f"remote sent an error without a message: {_compact(obj)}"
    if isinstance(wire_type, str):
        cls = _BY_TYPE.get(wire_type)
        if cls is GenericError and code == ShuttingDownError.wire_code:
            cls = ShuttingDownError
        if cls is not None:
            return cls(message, code=code, id=id)
        return KiteError(message, code=code, id=id, type=wire_type)
    # A JavaScript Error-like object: {"name": "TypeError", "message": "..."}.
    name = obj.get("name")
    if isinstance(name, str) and name not in ("", "Error") and "message" in obj:
        message = f"{name}: {message}"
    return GenericError(message, code=code, id=id)


class MethodNotFoundError(KiteError):
    """The receiver has no method of that name."""

    wire_type = "methodNotFound"


class AuthenticationError(KiteError):
    """The receiver refused the request's authentication."""

    wire_type = "authenticationError"


class ArgumentError(KiteError):
    """Arguments (or a query, identity, version...) have the wrong shape or value."""

    wire_type = "argumentError"


class GenericError(KiteError):
    """Any other error returned by a handler."""

    wire_type = "genericError"


class ShuttingDownError(GenericError):
    """The kite is shutting down and did not run the call.

    On the wire it stays a ``genericError`` (what Go kites and kite.js know) with the message
    "kite is shutting down"; the code ``shuttingDown`` lets a Python caller tell it from a
    handler's own error, so a pool can make the call on another kite: it was never run.
    """

    wire_code: ClassVar[str] = "shuttingDown"

    def __init__(
        self,
        message: str = "kite is shutting down",
        *,
        code: str = "shuttingDown",
        id: str = "",
        type: str | None = None,
    ) -> None:
        super().__init__(message, code=code, id=id, type=type)


class RequestLimitError(KiteError):
    """The method's throttle bucket is empty."""

    wire_type = "requestLimitError"


class KiteTimeoutError(KiteError, builtins.TimeoutError):
    """No response arrived in time (raised on the caller's side)."""

    wire_type = "timeout"


class DisconnectError(KiteError):
    """The remote kite disconnected before answering."""

    wire_type = "disconnect"


class SendError(KiteError):
    """A message could not be encoded or sent."""

    wire_type = "sendError"


class CallbackLimitError(SendError):
    """A message would make the connection hold more callbacks than its limit allows.

    Raised on the side that sends the functions; a kite whose reply hits the limit answers the
    caller with this error (wire type ``callbackLimitError``; docs/limits.md).
    """

    wire_type = "callbackLimitError"


class InvalidResponseError(KiteError):
    """The peer answered with something that is not a Kite response."""

    wire_type = "invalidResponse"


class ProtocolError(KiteError):
    """The peer sent a message that is not a valid dnode message."""

    wire_type = "protocolError"


_BY_TYPE: dict[str, type[KiteError]] = {
    cls.wire_type: cls
    for cls in (
        MethodNotFoundError,
        AuthenticationError,
        ArgumentError,
        GenericError,
        RequestLimitError,
        KiteTimeoutError,
        DisconnectError,
        SendError,
        CallbackLimitError,
        InvalidResponseError,
        ProtocolError,
    )
}
