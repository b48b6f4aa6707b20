"""Server frame encoding (with SockJS's JSON escaping) and client-side frame parsing."""

from __future__ import annotations

import json
import re

import pytest
from kite_transport_sockjs import (
    CloseFrame,
    FrameError,
    HeartbeatFrame,
    LineFrameDecoder,
    MessagesFrame,
    OpenFrame,
    close_frame,
    encode_client_messages,
    message_frame,
    parse_frame,
    quote,
)
from kite_transport_sockjs.frames import ANOTHER_CONNECTION_FRAME

# The code points the conformance suite (JSONEncoding.test_xhr_server_encodes) requires the
# server to send escaped, restated here from its description.
SERVER_MUST_ESCAPE = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")


def test_fixed_frames() -> None:
    assert message_frame(["a"]) == 'a["a"]'
    assert message_frame(["a", "b c"]) == 'a["a","b c"]'
    assert close_frame(3000, "Go away!") == 'c[3000,"Go away!"]'
    assert ANOTHER_CONNECTION_FRAME == 'c[2010,"Another connection still open"]'


def test_message_frame_embeds_json_messages_as_strings() -> None:
    msg = '{"method":"square","arguments":[4]}'
    assert message_frame([msg]) == 'a["{\\"method\\":\\"square\\",\\"arguments\\":[4]}"]'


def test_quote_escapes_every_code_point_the_suite_checks() -> None:
    chars = "".join(chr(i) for i in range(255, 65536) if SERVER_MUST_ESCAPE.match(chr(i)))
    expected = '"' + "".join(f"\\u{ord(c):04x}" for c in chars) + '"'
    assert quote(chars) == expected


def test_quote_keeps_ordinary_unicode_raw_and_escapes_controls_and_surrogates() -> None:
    assert quote("zażółć ☃ 😀") == '"zażółć ☃ 😀"'
    assert quote('\n\x01"\\') == '"\\n\\u0001\\"\\\\"'
    lone = quote("\ud800x")
    assert lone == '"\\ud800x"'
    lone.encode("utf-8")  # always encodable


def test_quote_round_trips_through_json() -> None:
    text = "".join(chr(i) for i in range(0, 0x3000, 7)) + "\ufffe\uffff"
    assert json.loads(quote(text)) == text


def test_encode_client_messages_is_a_json_array_of_strings() -> None:
    assert encode_client_messages([]) == "[]"
    payload = encode_client_messages(['{"a":1}', "\u2028"])
    assert payload == '["{\\"a\\":1}","\\u2028"]'
    assert json.loads(payload) == ['{"a":1}', "\u2028"]


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("o", OpenFrame()),
        ("h", HeartbeatFrame()),
        ("h" * 2048, HeartbeatFrame()),
        ('a["x","y"]', MessagesFrame(("x", "y"))),
        ("a[]", MessagesFrame(())),
        ('m"single"', MessagesFrame(("single",))),
        ('c[3000,"Go away!"]', CloseFrame(3000, "Go away!")),
        (
            'c[2010,"Another connection still open"]',
            CloseFrame(2010, "Another connection still open"),
        ),
    ],
)
def test_parse_frame(text: str, frame: object) -> None:
    assert parse_frame(text) == frame


@pytest.mark.parametrize(
    "text",
    ["", "x", "a", 'a["x"', "a[1]", 'a{"x":1}', "m[1]", "c[3000]", 'c["3000","r"]', 'c[true,"r"]'],
)
def test_parse_frame_rejects_malformed(text: str) -> None:
    with pytest.raises(FrameError):
        parse_frame(text)


def test_encoded_frames_parse_back() -> None:
    messages = ["plain", "\u200c\ufff0\x00", "ünï"]
    assert parse_frame(message_frame(messages)) == MessagesFrame(tuple(messages))
    assert parse_frame(close_frame(1002, "Connection interrupted")) == CloseFrame(
        1002, "Connection interrupted"
    )


def test_line_decoder_handles_split_lines_and_utf8() -> None:
    decoder = LineFrameDecoder()
    body = ("h" * 2048 + "\n" + "o\n" + 'a["żółw"]\n' + 'c[3000,"Go away!"]\n').encode()
    frames = []
    for i in range(0, len(body), 5):  # 5-byte pieces split the UTF-8 sequences too
        frames += decoder.feed(body[i : i + 5])
    assert frames == [
        HeartbeatFrame(),
        OpenFrame(),
        MessagesFrame(("żółw",)),
        CloseFrame(3000, "Go away!"),
    ]
    assert decoder.pending == ""


def test_line_decoder_keeps_unfinished_frame() -> None:
    decoder = LineFrameDecoder()
    assert decoder.feed(b'o\na["x') == [OpenFrame()]
    assert decoder.pending == 'a["x'
    assert decoder.feed(b'"]\n') == [MessagesFrame(("x",))]


def test_line_decoder_rejects_invalid_utf8() -> None:
    with pytest.raises(FrameError):
        LineFrameDecoder().feed(b"a[\xff]\n")
