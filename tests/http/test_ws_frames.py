"""The sans-IO frame codec, without sockets."""

from __future__ import annotations

import os
import struct
import sys

import pytest

from kitecore.http.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameDecoder,
    FrameError,
    Ping,
    Pong,
    encode_close,
    encode_frame,
    encode_text,
    mask_payload,
    masking_key,
)


def server_decoder(limit: int = 1 << 24) -> FrameDecoder:
    return FrameDecoder(expect_masked=True, max_message_size=limit)


def fragment(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    frame = bytearray(encode_frame(opcode, payload, mask=True))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("masked", [True, False])
def test_round_trip_at_length_boundaries(size: int, masked: bool) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    decoder = FrameDecoder(expect_masked=masked, max_message_size=1 << 24)
    assert decoder.feed(encode_text(text, mask=masked)) == []
    assert list(decoder.messages) == [text]


def test_header_sizes_follow_rfc() -> None:
    assert encode_text("a" * 125, mask=False)[:2] == b"\x81\x7d"
    assert encode_text("a" * 126, mask=False)[:4] == b"\x81\x7e\x00\x7e"
    assert encode_text("a" * 65536, mask=False)[:10] == b"\x81\x7f" + struct.pack("!Q", 65536)
    masked = encode_text("abc", mask=True)
    assert masked[1] == 0x80 | 3 and len(masked) == 2 + 4 + 3
    assert mask_payload(masked[2:6], masked[6:]) == b"abc"


def test_many_frames_in_one_feed_and_split_feeds() -> None:
    data = b"".join(encode_text(f"m{i}", mask=True) for i in range(100))
    decoder = server_decoder()
    decoder.feed(data)
    assert list(decoder.messages) == [f"m{i}" for i in range(100)]
    byte_by_byte = server_decoder()
    for i in range(len(data)):
        byte_by_byte.feed(data[i : i + 1])
    assert list(byte_by_byte.messages) == [f"m{i}" for i in range(100)]
    assert byte_by_byte.buffered == 0


def test_fragmented_message_with_interleaved_ping() -> None:
    decoder = server_decoder()
    data = (
        fragment(OP_TEXT, b"hel", fin=False)
        + fragment(OP_PING, b"p", fin=True)
        + fragment(OP_CONTINUATION, "lo é".encode()[:4], fin=False)
        + fragment(OP_CONTINUATION, "lo é".encode()[4:], fin=True)
    )
    assert decoder.feed(data) == [Ping(b"p")]
    assert list(decoder.messages) == ["hello é"]


def test_binary_utf8_is_text_and_other_binary_is_refused() -> None:
    decoder = server_decoder()
    decoder.feed(encode_frame(OP_BINARY, b"{}", mask=True))
    assert list(decoder.messages) == ["{}"]
    with pytest.raises(FrameError) as info:
        server_decoder().feed(encode_frame(OP_BINARY, b"\xff\xfe", mask=True))
    assert info.value.code == 1003


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (encode_frame(OP_TEXT, b"\xc3\x28", mask=True), 1007),
        (encode_frame(OP_TEXT, b"x", mask=False), 1002),  # client frames must be masked
        (bytes([0x80 | 0x40 | OP_TEXT]) + encode_frame(OP_TEXT, b"x", mask=True)[1:], 1002),
        (encode_frame(0x3, b"", mask=True), 1002),  # reserved opcode
        (fragment(OP_PING, b"", fin=False), 1002),
        (encode_frame(OP_PING, b"x" * 126, mask=True), 1002),
        (encode_frame(OP_CONTINUATION, b"x", mask=True), 1002),
        (fragment(OP_TEXT, b"a", fin=False) + encode_frame(OP_TEXT, b"b", mask=True), 1002),
        (encode_frame(OP_CLOSE, b"\x03", mask=True), 1002),
        (encode_frame(OP_CLOSE, struct.pack("!H", 1005), mask=True), 1002),
        (encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff", mask=True), 1007),
    ],
)
def test_protocol_errors_carry_the_close_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as info:
        server_decoder().feed(data)
    assert info.value.code == code


def test_oversized_message_is_refused_from_its_header() -> None:
    decoder = server_decoder(limit=1000)
    header_only = encode_frame(OP_TEXT, b"x" * 1001, mask=True)[:8]
    with pytest.raises(FrameError) as info:
        decoder.feed(header_only)
    assert info.value.code == 1009
    fragmented = server_decoder(limit=1000)
    fragmented.feed(fragment(OP_TEXT, b"x" * 600, fin=False))
    with pytest.raises(FrameError):
        fragmented.feed(fragment(OP_CONTINUATION, b"x" * 600, fin=True))


def test_close_and_control_events() -> None:
    decoder = server_decoder()
    data = (
        encode_frame(OP_PONG, b"q", mask=True)
        + encode_text("last", mask=True)
        + encode_frame(OP_CLOSE, struct.pack("!H", 4000) + b"bye", mask=True)
        + encode_text("after close", mask=True)
    )
    assert decoder.feed(data) == [Pong(b"q"), Close(4000, "bye")]
    assert list(decoder.messages) == ["last"]
    assert decoder.feed(encode_text("more", mask=True)) == []
    assert list(decoder.messages) == ["last"]
    assert server_decoder().feed(encode_frame(OP_CLOSE, b"", mask=True)) == [Close(1005, "")]


def test_encode_close_truncates_long_reason_on_a_character_boundary() -> None:
    frame = encode_close(1000, "é" * 100, mask=False)
    assert len(frame) - 2 <= 125
    decoder = FrameDecoder(expect_masked=False, max_message_size=100)
    (event,) = decoder.feed(frame)
    assert isinstance(event, Close) and event.code == 1000 and set(event.reason) == {"é"}
    assert encode_close(1005, "ignored", mask=False) == b"\x88\x00"


def test_masking_keys_are_fresh_across_batches() -> None:
    # keys come from os.urandom in batches: across several batches, (practically) no repeats
    keys = [masking_key() for _ in range(5000)]
    assert all(len(key) == 4 for key in keys)
    assert len(set(keys)) > 4990
    frames = {encode_text("same", mask=True)[2:6] for _ in range(100)}
    assert len(frames) > 95  # the key sits after the 2-byte header


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_keys() -> None:
    masking_key()  # a batch is drawn in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next keys go to the parent
        os.close(read)
        os.write(write, b"".join(masking_key() for _ in range(8)))
        os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 64):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(masking_key() for _ in range(8))
    assert len(child) == 32 and child != parent


@pytest.mark.parametrize("speed", [True, False], ids=["speed-extra", "python"])
def test_mask_payload_is_the_bytewise_xor_at_every_length(
    speed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Masking XORs byte i with key[i % 4], whatever the length: short payloads, those around
    the word-count where the way the key stream is built changes, long ones; and twice is
    the identity. So with the speed extra's C function and without it."""
    from kitecore.http import frames

    if speed:
        assert frames._apply_mask is not None  # (the test extra brings websockets)
    else:
        monkeypatch.setattr(frames, "_apply_mask", None)
    lengths = [*range(0, 33), 125, 126, 127, 311, 312, 4092, 4095, 4096, 4097, 4100, 70001]
    for n in lengths:
        key, payload = os.urandom(4), os.urandom(n)
        expected = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        masked = mask_payload(key, payload)
        assert type(masked) is bytes
        assert masked == expected, n
        assert mask_payload(key, masked) == payload
        assert mask_payload(bytearray(key), bytearray(payload)) == expected
