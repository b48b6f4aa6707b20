"""The sans-IO WebSocket connection (kitecore.http.wscore.WebSocketCore), without a loop.

Two cores are wired back to back through plain byte strings (what a driver would write and
read), as h11's ``ConnectionPair`` does: fragmentation, control frames between fragments, the
close handshake from either side, limits, invalid UTF-8 and the masking rules.
"""

from __future__ import annotations

import anyio
import pytest

from kitecore.http.errors import WebSocketProtocolError
from kitecore.http.frames import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameDecoder,
    Ping,
    Pong,
    encode_frame,
)
from kitecore.http.wscore import (
    OUTBOUND_LIMIT_CLOSE,
    PAUSE_MESSAGES,
    WRITE_HIGH_WATER,
    WebSocketCore,
)


def pair(**server_options: int) -> tuple[WebSocketCore, WebSocketCore]:
    """A client core and a server core."""
    return WebSocketCore(client=True), WebSocketCore(client=False, **server_options)


def fragment(opcode: int, payload: bytes, *, fin: bool, mask: bool = True) -> bytes:
    frame = bytearray(encode_frame(opcode, payload, mask=mask))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


def decoded(data: bytes, *, from_client: bool) -> list[object]:
    """The control events (and texts) in ``data`` as the other side would parse them."""
    decoder = FrameDecoder(expect_masked=from_client, max_message_size=1 << 20)
    events: list[object] = list(decoder.feed(data))
    return [*decoder.messages, *events]


def test_messages_flow_both_ways() -> None:
    client, server = pair()
    assert server.receive_data(client.encode_messages(["one", "two"])) == b""
    assert list(server.messages) == ["one", "two"]
    assert client.receive_data(server.encode_message("three")) == b""
    assert list(client.messages) == ["three"]


def test_fragmented_message_with_interleaved_ping_and_pong() -> None:
    _, server = pair()
    data = (
        fragment(OP_TEXT, b"hel", fin=False)
        + fragment(OP_PING, b"p1", fin=True)
        + fragment(OP_CONTINUATION, b"lo ", fin=False)
        + fragment(OP_PONG, b"", fin=True)
        + fragment(OP_CONTINUATION, "wörld".encode(), fin=True)
    )
    # fed a byte at a time: frames split anywhere come out the same
    answers = b"".join(server.receive_data(data[i : i + 1]) for i in range(len(data)))
    assert list(server.messages) == ["hello wörld"]
    assert decoded(answers, from_client=False) == [Pong(b"p1")]


def test_binary_utf8_is_text() -> None:
    _, server = pair()
    server.receive_data(fragment(OP_BINARY, b"bin", fin=True))
    assert list(server.messages) == ["bin"]


def test_close_started_by_the_client() -> None:
    client, server = pair()
    frame = client.close(4001, "bye")
    assert client.close_sent and not client.open and client.close_code == 4001
    assert client.close(4002, "again") == b""  # one close frame at most
    echo = server.receive_data(frame)
    assert server.close_received and server.close_sent
    assert (server.close_code, server.close_reason) == (4001, "bye")
    assert client.receive_data(echo) == b""  # nothing answers an answer
    assert client.close_received and (client.close_code, client.close_reason) == (4001, "bye")
    with pytest.raises(anyio.BrokenResourceError):
        server.encode_message("late")


def test_close_started_by_the_server_and_nothing_after_it_is_parsed() -> None:
    client, server = pair()
    data = server.close(1001, "going away") + server_frame_after_close()
    echo = client.receive_data(data)
    assert list(client.messages) == []
    assert (client.close_code, client.close_reason) == (1001, "going away")
    assert server.receive_data(echo) == b""
    assert server.close_received and server.close_code == 1001


def server_frame_after_close() -> bytes:
    return encode_frame(OP_TEXT, b"after close", mask=False)


def test_pings_after_our_close_are_not_answered() -> None:
    client, server = pair()
    server.close(1000, "")
    assert server.receive_data(client.ping()) == b""


def test_message_over_the_limit_is_refused_from_its_header_with_1009() -> None:
    client, server = pair(max_message_size=10)
    header_only = client.encode_message("x" * 11)[:8]  # the payload never arrives
    answer = server.receive_data(header_only)
    assert server.close_code == 1009 and server.close_received
    assert isinstance(server.error, WebSocketProtocolError) and server.error.code == 1009
    echo = client.receive_data(answer)  # the client echoes the code (RFC 6455 5.5.1)
    assert decoded(echo, from_client=True) == [Close(1009, "")]
    assert client.close_code == 1009


def test_invalid_utf8_text_closes_1007_and_other_binary_1003() -> None:
    _, server = pair()
    server.receive_data(fragment(OP_TEXT, b"\xff\xfe", fin=True))
    assert server.close_code == 1007
    _, server = pair()
    server.receive_data(fragment(OP_BINARY, b"\xff\xfe", fin=True))
    assert server.close_code == 1003


@pytest.mark.parametrize(
    ("data", "client_side"),
    [
        (encode_frame(OP_TEXT, b"x", mask=False), False),  # a server gets an unmasked frame
        (encode_frame(OP_TEXT, b"x", mask=True), True),  # a client gets a masked frame
    ],
    ids=["unmasked-to-server", "masked-to-client"],
)
def test_masking_rules(data: bytes, client_side: bool) -> None:
    core = WebSocketCore(client=client_side)
    answer = core.receive_data(data)
    assert core.close_code == 1002 and core.error is not None
    # the answering close frame is masked exactly when the core is a client
    assert bool(answer[1] & 0x80) is client_side


def test_the_error_is_for_the_receiver_unless_the_application_closed() -> None:
    _, server = pair()
    server.local_closed = True
    server.receive_data(fragment(OP_TEXT, b"\xff", fin=True))
    assert server.error is None and server.close_code == 1007


def test_only_the_latest_ping_is_answered_once_writes_resume() -> None:
    client, server = pair()
    server.writes_blocked = True
    assert server.receive_data(client.ping() + fragment(OP_PING, b"last", fin=True)) == b""
    pong = server.writes_resumed()
    assert decoded(pong, from_client=False) == [Pong(b"last")]
    assert server.writes_resumed() == b""  # answered once


def test_outbound_limit_counts_only_past_the_high_water_mark() -> None:
    _, server = pair(max_outbound_bytes=WRITE_HIGH_WATER * 2)
    assert not server.outbound_overflow(WRITE_HIGH_WATER, WRITE_HIGH_WATER * 5)
    assert not server.outbound_overflow(WRITE_HIGH_WATER + 1, WRITE_HIGH_WATER - 1)
    assert server.outbound_overflow(WRITE_HIGH_WATER + 1, WRITE_HIGH_WATER)
    frame = server.fail_outbound(WRITE_HIGH_WATER * 3)
    assert (server.close_code, server.close_reason) == OUTBOUND_LIMIT_CLOSE
    assert server.error is None and not server.open
    assert decoded(frame, from_client=False) == [Close(*OUTBOUND_LIMIT_CLOSE)]
    assert WebSocketCore(client=False).outbound_overflow(1 << 40, 1 << 40) is False  # no limit


def test_inbound_backlog_says_when_to_stop_reading() -> None:
    client, server = pair()
    server.receive_data(client.encode_messages(["m"] * PAUSE_MESSAGES))
    assert not server.inbound_backlog()
    server.receive_data(client.encode_message("one more"))
    assert server.inbound_backlog()
    server.messages.clear()
    server.receive_data(client.encode_message("fresh"))
    assert not server.inbound_backlog()


def test_lost_link_is_1006_and_keeps_an_earlier_close_code() -> None:
    _, server = pair()
    server.connection_lost()
    assert (server.close_code, server.close_reason) == (1006, "connection lost")
    assert isinstance(server.closed_error(), anyio.BrokenResourceError)
    _, server = pair()
    server.close(1000, "")
    server.connection_lost()
    assert server.close_code == 1000
    server.local_closed = True
    assert isinstance(server.closed_error(), anyio.ClosedResourceError)


def test_ping_frame_and_no_ping_when_closed() -> None:
    client, _ = pair()
    assert decoded(client.ping(), from_client=True) == [Ping(b"")]
    client.close()
    assert client.ping() == b""
