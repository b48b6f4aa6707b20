"""Decoding client payloads and the JSONP callback, with the exact SockJS error answers."""

from __future__ import annotations

import json

import pytest
from kite_transport_sockjs import (
    CallbackError,
    PayloadError,
    decode_jsonp_send,
    decode_websocket_message,
    decode_xhr_send,
    jsonp_callback,
)

FORM = "application/x-www-form-urlencoded"


def test_xhr_send_accepts_arrays_of_strings() -> None:
    assert decode_xhr_send(b'["a"]') == ["a"]
    assert decode_xhr_send(b'["a","b"]') == ["a", "b"]
    assert decode_xhr_send(b"[]") == []
    assert decode_xhr_send('["żółw"]'.encode()) == ["żółw"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "Payload expected."),
        (b'["x', "Broken JSON encoding."),
        (b"not json", "Broken JSON encoding."),
        (b"\xff\xfe", "Broken JSON encoding."),
        (b'"a"', "Payload expected."),
        (b'{"a":1}', "Payload expected."),
        (b"null", "Payload expected."),
        (b"[1]", "Payload expected."),
        (b'["a",null]', "Payload expected."),
    ],
)
def test_xhr_send_errors(body: bytes, text: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_xhr_send(body)
    assert (info.value.status, info.value.body) == (500, text)


def test_client_escaped_characters_are_decoded() -> None:
    # A client escapes many code points as \uXXXX; the server must decode them all.
    chars = [chr(i) for i in [*range(0x20), *range(0x7F, 0xA0), 0xAD, 0x2028, 0xFEFF, 0xFFFF]]
    body = "[" + '"' + "".join(f"\\u{ord(c):04x}" for c in chars) + '"' + "]"
    assert decode_xhr_send(body.encode()) == ["".join(chars)]


def test_jsonp_send_form_encoded() -> None:
    assert decode_jsonp_send(b"d=%5B%22x%22%5D", FORM) == ["x"]
    assert decode_jsonp_send(b"d=%5B%5D", FORM + "; charset=UTF-8") == []


def test_jsonp_send_plain_body_is_not_url_decoded() -> None:
    assert decode_jsonp_send(b'["%61bc"]', "text/plain") == ["%61bc"]
    assert decode_jsonp_send(b'["abc"]', "") == ["abc"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"d=%5B%22x", "Broken JSON encoding."),
        (b"", "Payload expected."),
        (b"d=", "Payload expected."),
        (b"p=p", "Payload expected."),
    ],
)
def test_jsonp_send_errors(body: bytes, text: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_jsonp_send(body, FORM)
    assert (info.value.status, info.value.body) == (500, text)


def test_websocket_messages() -> None:
    assert decode_websocket_message('["a"]') == ["a"]
    assert decode_websocket_message('["a","b"]') == ["a", "b"]
    assert decode_websocket_message("") == []
    assert decode_websocket_message("[]") == []
    assert decode_websocket_message(json.dumps("bare")) == ["bare"]


@pytest.mark.parametrize("text", ['["a', "{}", "1", '"unterminated'])
def test_websocket_broken_frames_raise(text: str) -> None:
    with pytest.raises(PayloadError):
        decode_websocket_message(text)


@pytest.mark.parametrize(
    ("query", "name"),
    [("c=%63allback", "callback"), ("c=x", "x"), ("callback=a.b-c_9", "a.b-c_9"), ("t=1&c=y", "y")],
)
def test_callback_names(query: str, name: str) -> None:
    assert jsonp_callback(query) == name


@pytest.mark.parametrize("query", ["", "t=1", "c="])
def test_callback_required(query: str) -> None:
    with pytest.raises(CallbackError) as info:
        jsonp_callback(query)
    assert (info.value.status, info.value.body) == (500, '"callback" parameter required')


@pytest.mark.parametrize("query", ["c=%20", "c=*", "c=abc(", "c=abc%28", "c=" + "a" * 33])
def test_callback_invalid(query: str) -> None:
    with pytest.raises(CallbackError) as info:
        jsonp_callback(query)
    assert (info.value.status, info.value.body) == (500, 'invalid "callback" parameter')
