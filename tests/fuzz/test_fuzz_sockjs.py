"""Properties of the SockJS decoders of peer input: only their documented errors escape.

Server side: ``xhr_send`` / ``jsonp_send`` bodies and websocket text frames raise only
:class:`~kite_transport_sockjs.PayloadError` (``Broken JSON encoding.`` / ``Payload
expected.``) and otherwise give a list of strings; the JSONP callback parameter only
:class:`~kite_transport_sockjs.CallbackError`. Client side: ``parse_frame`` and the
line decoder of xhr bodies raise only :class:`~kite_transport_sockjs.FrameError`.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kite_transport_sockjs import (
    CallbackError,
    FrameError,
    PayloadError,
    decode_jsonp_send,
    decode_websocket_message,
    decode_xhr_send,
    jsonp_callback,
    parse_frame,
)
from kite_transport_sockjs.frames import CloseFrame, LineFrameDecoder, MessagesFrame
from peer_json import peer_json_text, peer_payloads


def _is_messages(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(m, str) for m in value)


@given(peer_payloads)
def test_xhr_send_bodies(body: bytes) -> None:
    try:
        messages = decode_xhr_send(body)
    except PayloadError as exc:
        assert exc.status == 500 and exc.body in ("Broken JSON encoding.", "Payload expected.")
    else:
        assert _is_messages(messages)


@given(
    peer_payloads,
    st.sampled_from(["", "text/plain", "application/x-www-form-urlencoded; charset=UTF-8"]),
)
def test_jsonp_send_bodies(body: bytes, content_type: str) -> None:
    for candidate in (body, b"d=" + body):
        try:
            messages = decode_jsonp_send(candidate, content_type)
        except PayloadError:
            continue
        assert _is_messages(messages)


@given(peer_json_text)
def test_websocket_frames_from_clients(text: str) -> None:
    try:
        messages = decode_websocket_message(text)
    except PayloadError:
        return
    assert _is_messages(messages)


@given(st.text(max_size=60))
def test_jsonp_callback_parameter(query: str) -> None:
    try:
        callback = jsonp_callback(query)
    except CallbackError:
        return
    assert callback and len(callback) <= 32


server_frames = st.one_of(
    st.tuples(st.sampled_from("oahmcx"), peer_json_text).map("".join),
    st.text(max_size=30),
)


@given(server_frames)
def test_frames_from_servers(frame: str) -> None:
    try:
        parsed = parse_frame(frame)
    except FrameError:
        return
    if isinstance(parsed, MessagesFrame):
        assert all(isinstance(m, str) for m in parsed.messages)
    if isinstance(parsed, CloseFrame):
        assert isinstance(parsed.code, int) and isinstance(parsed.reason, str)


@given(st.lists(st.one_of(peer_payloads, server_frames.map(lambda f: (f + "\n").encode(
    "utf-8", "surrogatepass"))), max_size=6))  # fmt: skip
def test_xhr_bodies_from_servers_in_pieces(chunks: list[bytes]) -> None:
    decoder = LineFrameDecoder()
    for chunk in chunks:
        try:
            decoder.feed(chunk)
        except FrameError:
            return
