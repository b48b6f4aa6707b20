"""Kite's request envelope and response on top of dnode (protocol.md §2).

A request's ``arguments`` is one "call options" object::

    [{"kite": {...}, "authentication": {"type": ..., "key": ...} | null,
      "responseCallback": "[Function]", "withArgs": [...]}]

and the receiver answers by calling ``responseCallback`` with one ``{"error", "result"}`` object.
kite.js peers bend this: they omit ``authentication``, may send ``withArgs`` as a scalar, and a
kite.js *client* answers a call node-style with ``(err, result)``. The parsers here accept all of
that; the builders emit what Go emits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import dnode
from .errors import ArgumentError, InvalidResponseError, KiteError
from .identity import KiteIdentity

__all__ = [
    "Authentication",
    "CallOptions",
    "CallOptionsError",
    "RequestEncoder",
    "parse_call_options",
    "parse_response",
    "request_arguments",
    "response_arguments",
]

_INVALID_RESPONSE = "Server has sent invalid response arguments"
#: Method names whose request heads one :class:`RequestEncoder` keeps encoded.
_CACHED_METHODS = 64


@dataclass(frozen=True, slots=True)
class Authentication:
    """The ``authentication`` object of a request: a type (``token``, ``kiteKey``...) and a key."""

    type: str
    key: str

    def to_wire(self) -> dict[str, str]:
        """Return ``{"type": ..., "key": ...}``."""
        return {"type": self.type, "key": self.key}

    @classmethod
    def from_wire(cls, obj: Any) -> Authentication | None:
        """Parse the wire object; ``None`` gives ``None``, a wrong shape :class:`ArgumentError`."""
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise ArgumentError(f"authentication is not an object: {type(obj).__name__}")
        auth_type = obj.get("type")
        key = obj.get("key")
        auth_type = "" if auth_type is None else auth_type
        key = "" if key is None else key
        if not isinstance(auth_type, str) or not isinstance(key, str):
            raise ArgumentError("authentication type and key must be strings")
        return cls(auth_type, key)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """A parsed request: who calls, with what credentials and arguments, and where to reply."""

    kite: KiteIdentity | None
    authentication: Authentication | None
    with_args: list[Any]
    response_callback: Any | None


# Filled slot by slot, like dnode.Message: parse_call_options runs for every request.
_new_object = object.__new__
_set_kite = CallOptions.__dict__["kite"].__set__
_set_authentication = CallOptions.__dict__["authentication"].__set__
_set_with_args = CallOptions.__dict__["with_args"].__set__
_set_response_callback = CallOptions.__dict__["response_callback"].__set__


def _call_options(
    kite: KiteIdentity | None,
    authentication: Authentication | None,
    with_args: list[Any],
    response_callback: Any | None,
) -> CallOptions:
    options = _new_object(CallOptions)
    _set_kite(options, kite)
    _set_authentication(options, authentication)
    _set_with_args(options, with_args)
    _set_response_callback(options, response_callback)
    return options


class CallOptionsError(ArgumentError):
    """The request's arguments are malformed (wire type ``argumentError``).

    ``response_callback`` is the request's callback when one could still be found, so the
    receiver can reply with this error; ``None`` otherwise.
    """

    def __init__(self, message: str, response_callback: Any | None = None) -> None:
        super().__init__(message)
        self.response_callback = response_callback


def _response_callback(options: Any) -> Any | None:
    if isinstance(options, dict):
        callback = options.get("responseCallback")
        if callable(callback):
            return callback
    return None


def parse_call_options(arguments: list[Any]) -> CallOptions:
    """Parse a request's ``arguments`` (after unscrubbing) into :class:`CallOptions`.

    Raises :class:`CallOptionsError` when ``arguments`` is not exactly one object or a field
    has the wrong shape; its ``response_callback`` is set whenever ``arguments[0]`` carried one.
    """
    if len(arguments) != 1:
        callback = _response_callback(arguments[0]) if arguments else None
        raise CallOptionsError(
            f"Invalid array length: expected 1 call options object, got {len(arguments)}",
            callback,
        )
    options = arguments[0]
    if type(options) is not dict:
        raise CallOptionsError(f"call options is not an object: {type(options).__name__}")
    callback = options.get("responseCallback")
    if not callable(callback):
        callback = None

    with_args = options.get("withArgs")
    if with_args is None:
        with_args = []
    elif type(with_args) is not list:
        with_args = [with_args]  # kite.js: tell(m, 4) sends "withArgs": 4

    kite = options.get("kite")
    auth = options.get("authentication")
    try:
        identity = None if kite is None else KiteIdentity.from_wire(kite)
        authentication = None if auth is None else Authentication.from_wire(auth)
    except ArgumentError as exc:
        raise CallOptionsError(exc.message, callback) from None
    return _call_options(identity, authentication, with_args, callback)


def request_arguments(
    kite: dict[str, str],
    authentication: dict[str, str] | None,
    with_args: list[Any],
    response_callback: Any,
) -> list[Any]:
    """Build a request's ``arguments`` in Go's key order.

    ``kite`` is the caller's identity (``KiteIdentity.to_wire()``, worth caching);
    ``authentication`` is ``None`` when there is none: kite.js servers ignore requests whose
    ``authentication`` is an object they do not expect, but accept ``null``.
    """
    return [
        {
            "kite": kite,
            "authentication": authentication,
            "responseCallback": response_callback,
            "withArgs": with_args,
        }
    ]


class RequestEncoder:
    """Encodes the requests of one caller.

    The caller's identity (``kite``) and ``authentication`` are the same in every request it
    sends, and they are most of a request's text: they are encoded once, here, and
    :meth:`encode` adds the method, arguments and callbacks. The text is exactly what
    ``dnode.encode_call(method, request_arguments(...), callbacks)`` gives.
    """

    __slots__ = ("_head", "_starts", "authentication", "kite")

    def __init__(self, kite: dict[str, str], authentication: dict[str, str] | None) -> None:
        self.kite = kite
        self.authentication = authentication
        # the text up to ``withArgs``'s value, per method name (a caller calls few methods)
        self._starts: dict[str, str] = {}
        self._head = "".join(
            (
                ',"arguments":[{"kite":',
                dnode.encode_value(kite),
                ',"authentication":',
                dnode.encode_value(authentication),
                ',"responseCallback":"[Function]","withArgs":',
            )
        )

    def encode(
        self,
        method: str,
        with_args: list[Any],
        callbacks: dict[str, dnode.Path],
        extra: dict[str, Any] | None = None,
    ) -> str:
        """The request calling ``method`` with ``with_args`` (already scrubbed) and
        ``callbacks`` (the response callback's included); ``extra`` adds fields to the call
        options after ``withArgs``. Raises :class:`SendError` when the arguments are not JSON.
        """
        encode_value = dnode.encode_value
        parts = [self._start(method), encode_value(with_args)]
        if extra:
            parts.append(_fields_text(extra))
        parts += ('}],"callbacks":', encode_value(callbacks), "}")
        text = "".join(parts)
        if dnode.carriable(text):
            return text
        options = request_arguments(self.kite, self.authentication, with_args, "[Function]")
        if extra:
            options[0].update(extra)
        return dnode.encode_call(method, options, callbacks)

    def encode_plain(
        self,
        method: str,
        with_args: list[Any],
        callback_id: int,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """The request calling ``method`` with ``with_args`` (already scrubbed, no function in
        them) and its response callback ``callback_id`` alone: what
        ``encode(method, with_args, {str(callback_id): [0, "responseCallback"]}, extra)``
        gives, in fewer steps (the common call; ``extra``, e.g. call metadata, is encoded
        as one object whose fields are spliced in)."""
        if extra:
            text = "".join(
                (
                    self._start(method),
                    dnode.encode_value(with_args),
                    _fields_text(extra),
                    '}],"callbacks":{"',
                    str(int(callback_id)),
                    '":[0,"responseCallback"]}}',
                )
            )
        else:
            text = "".join(
                (
                    self._start(method),
                    dnode.encode_value(with_args),
                    '}],"callbacks":{"',
                    str(int(callback_id)),
                    '":[0,"responseCallback"]}}',
                )
            )
        if dnode.carriable(text):
            return text
        return self.encode(method, with_args, {str(callback_id): [0, "responseCallback"]}, extra)

    def _start(self, method: str) -> str:
        """The request's text up to the value of ``withArgs`` (cached per method name)."""
        starts = self._starts
        start = starts.get(method) if type(method) is str else None
        if start is None:
            start = '{"method":' + dnode.encode_value(method) + self._head
            if type(method) is str and len(starts) < _CACHED_METHODS:
                starts[method] = start
        return start


#: A string as JSON text, as :func:`dnode.encode_value` writes it (``ensure_ascii`` off).
_encode_string = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def _fields_text(extra: dict[str, Any]) -> str:
    """``extra``'s fields as they follow ``withArgs`` in the call options: each
    ``,"key":value``, the text ``dnode.encode_value(extra)[1:-1]`` gives after a comma.

    An object of string keys and string values (call metadata) is written with the JSON
    string encoder directly, about a third of the cost of the generic encoder on a dict;
    any other field goes through the generic encoder."""
    parts = []
    for key, value in extra.items():
        if type(key) is str and type(value) is dict:
            items = []
            for item_key, item in value.items():
                if type(item_key) is not str or type(item) is not str:
                    break
                items.append(f"{_encode_string(item_key)}:{_encode_string(item)}")
            else:
                parts.append(f",{_encode_string(key)}:{{{','.join(items)}}}")
                continue
        parts.append("," + dnode.encode_value({key: value})[1:-1])
    return "".join(parts)


def response_arguments(result: Any = None, error: KiteError | None = None) -> list[Any]:
    """Build the one-object ``arguments`` of a reply: ``[{"error": ..., "result": ...}]``."""
    return [{"error": None if error is None else error.to_wire(), "result": result}]


def parse_response(arguments: list[Any]) -> Any:
    """Return the result carried by a reply's ``arguments``, or raise the error it carries.

    Accepts Kite's single ``{"error", "result"}`` object and the node-style ``[err, result]``
    that kite.js clients send (``err`` null on success; otherwise a Kite error object, a
    JavaScript ``Error``-like object or a string); a lone ``[null]`` (kite.js answering for a
    handler that returned ``undefined``) is a successful ``None``. Anything else raises
    :class:`InvalidResponseError`.
    """
    count = len(arguments)
    if count == 1:
        response = arguments[0]
        if type(response) is dict and ("error" in response or "result" in response):
            error = response.get("error")
            if error is not None:
                raise KiteError.from_wire(error)
            return response.get("result")
        if response is None:
            return None  # node-style (null): kite.js for a handler that returned undefined
        raise InvalidResponseError(_INVALID_RESPONSE)
    if count == 0:
        raise InvalidResponseError(_INVALID_RESPONSE)
    error = arguments[0]
    if error is not None:
        raise KiteError.from_wire(error)
    return arguments[1]
