"""Decoding what SockJS clients send: message payloads and the JSONP callback name.

Every function returns plain values or raises a :class:`~kite_transport_sockjs.errors.RequestError`
subclass that carries the exact HTTP status and body SockJS servers answer with (status 500, body
``Payload expected.``, ``Broken JSON encoding.``, ``"callback" parameter required`` or
``invalid "callback" parameter``; sockjs-node's wording, which the conformance suite checks).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from kitecore.protocol import load_json

from .errors import CallbackError, PayloadError

__all__ = [
    "BROKEN_JSON",
    "PAYLOAD_EXPECTED",
    "decode_jsonp_send",
    "decode_messages",
    "decode_websocket_message",
    "decode_xhr_send",
    "jsonp_callback",
]

PAYLOAD_EXPECTED = "Payload expected."
BROKEN_JSON = "Broken JSON encoding."

_FORM_TYPE = "application/x-www-form-urlencoded"
_INVALID_CALLBACK = re.compile(r"[^a-zA-Z0-9_.-]")
_MAX_CALLBACK_LENGTH = 32


def decode_messages(text: str) -> list[str]:
    """Decode a JSON array of strings; the common core of every send path.

    ``[]`` is valid (clients send it as a keep-alive) and gives no messages.
    """
    if not text:
        raise PayloadError(500, PAYLOAD_EXPECTED)
    try:
        value = load_json(text)  # bounded depth: a deep payload is broken, not a crash
    except ValueError as exc:
        raise PayloadError(500, BROKEN_JSON) from exc
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise PayloadError(500, PAYLOAD_EXPECTED)
    return value


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(500, BROKEN_JSON) from exc


def decode_xhr_send(body: bytes) -> list[str]:
    """Messages of an ``xhr_send`` POST body, whatever its Content-Type."""
    return decode_messages(_text(body))


def decode_jsonp_send(body: bytes, content_type: str = "") -> list[str]:
    """Messages of a ``jsonp_send`` POST body.

    A form-encoded body (``application/x-www-form-urlencoded``) carries the JSON array in field
    ``d``; any other body is the JSON array itself. A form without a non-empty ``d`` is
    ``Payload expected.``.
    """
    text = _text(body)
    if content_type.split(";", 1)[0].strip().lower() == _FORM_TYPE:
        fields = parse_qs(text, keep_blank_values=True)
        text = fields.get("d", [""])[0]
    return decode_messages(text)


def decode_websocket_message(text: str) -> list[str]:
    """Messages of one text frame received on a SockJS websocket.

    An empty frame is ignored (no messages). Besides the usual array, a bare JSON string is taken
    as one message, as sockjs-node does. Anything else raises :class:`PayloadError`; the caller
    must then drop the websocket connection (there is no HTTP answer on a websocket).
    """
    if not text:
        return []
    if text.lstrip().startswith('"'):
        try:
            value = load_json(text)
        except ValueError as exc:
            raise PayloadError(500, BROKEN_JSON) from exc
        if isinstance(value, str):
            return [value]
    return decode_messages(text)


def jsonp_callback(query: str) -> str:
    """The callback name from a ``jsonp``/``htmlfile`` query string (``c`` or ``callback``).

    The name must match ``[a-zA-Z0-9_.-]+`` and be at most 32 characters, which keeps it safe
    to paste into JavaScript.
    """
    fields = parse_qs(query, keep_blank_values=True)
    values = fields.get("c") or fields.get("callback") or [""]
    callback = values[0]
    if not callback:
        raise CallbackError(500, '"callback" parameter required')
    if _INVALID_CALLBACK.search(callback) or len(callback) > _MAX_CALLBACK_LENGTH:
        raise CallbackError(500, 'invalid "callback" parameter')
    return callback
