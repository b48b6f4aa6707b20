"""Properties of the core's WebSocket frame decoder and HTTP upgrade parser against any bytes.

* :class:`kitecore.http.frames.FrameDecoder` (both sides): whatever bytes arrive, in whatever
  pieces, only :class:`~kitecore.http.frames.FrameError` escapes, with one of the close
  codes its docstring lists; every message it yields is a ``str``; masked texts round-trip.
* :class:`kitecore.http.server.HTTPServer` (upgrade fast path and h11): any request head gets
  a status from the documented set, or the connection is closed; nothing is logged as an
  unexpected error, and the server keeps answering a valid upgrade.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st

from kitecore.http.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameDecoder,
    FrameError,
    encode_frame,
    encode_text,
    mask_payload,
)
from kitecore.http.server import HTTPServer

#: Close codes FrameDecoder answers a broken peer with (see its module docstring).
FRAME_ERROR_CODES = {1002, 1003, 1007, 1009}
#: Statuses the server may answer a request head with (101 for an upgrade it accepts).
HTTP_STATUSES = {101, 200, 400, 404, 405, 408, 413, 426, 431, 501, 503, 505}
MAX_MESSAGE = 1024

# --- frames ----------------------------------------------------------------------------------


@st.composite
def raw_frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame, mostly well-formed, with its header bits and length free to lie."""
    opcode = draw(
        st.one_of(
            st.sampled_from([OP_TEXT, OP_BINARY, OP_CONTINUATION, OP_PING, OP_PONG, OP_CLOSE]),
            st.integers(0, 15),
        )
    )
    fin = draw(st.booleans())
    rsv = draw(st.sampled_from([0, 0, 0, 0x10, 0x40]))
    mask = masked if draw(st.integers(0, 9)) else not masked
    payload = draw(
        st.one_of(
            st.text(max_size=40).map(str.encode),
            st.binary(max_size=40),
            st.binary(min_size=126, max_size=300),
        )
    )
    if opcode == OP_CLOSE and draw(st.booleans()):
        payload = draw(st.integers(0, 65535)).to_bytes(2, "big") + payload[:20]
    n = len(payload)
    length_form = draw(st.sampled_from(["exact", "exact", "short", "long", "huge"]))
    mask_bit = 0x80 if mask else 0
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    if length_form == "huge":
        head += bytes([127 | mask_bit]) + (2**63 - 1).to_bytes(8, "big")
    elif length_form == "long" or (length_form == "exact" and n >= 65536):
        head += bytes([127 | mask_bit]) + n.to_bytes(8, "big")
    elif length_form == "short" or (length_form == "exact" and n >= 126):
        head += bytes([126 | mask_bit]) + n.to_bytes(2, "big")
    else:
        head += bytes([n | mask_bit])
    if mask:
        key = draw(st.binary(min_size=4, max_size=4))
        return head + key + mask_payload(key, payload)
    return head + payload


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    return [*pieces, data[start:]]


@given(
    masked=st.booleans(),
    frames=st.data(),
    junk=st.binary(max_size=20),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_frame_decoder_raises_only_protocol_errors(
    masked: bool, frames: st.DataObject, junk: bytes, cuts: list[int]
) -> None:
    data = b"".join(frames.draw(st.lists(raw_frames(masked), max_size=5))) + junk
    decoder = FrameDecoder(expect_masked=masked, max_message_size=MAX_MESSAGE)
    for piece in _chunks(data, cuts):
        try:
            decoder.feed(piece)
        except FrameError as exc:
            assert exc.code in FRAME_ERROR_CODES
            break
    assert all(isinstance(m, str) for m in decoder.messages)


@given(
    texts=st.lists(st.text(max_size=300), max_size=5),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_masked_texts_round_trip_in_any_pieces(texts: list[str], cuts: list[int]) -> None:
    data = b"".join(encode_text(t, mask=True) for t in texts)
    data += encode_frame(OP_PING, b"p", mask=True)
    decoder = FrameDecoder(expect_masked=True, max_message_size=10_000)
    controls = []
    for piece in _chunks(data, cuts):
        controls += decoder.feed(piece)
    assert list(decoder.messages) == texts
    assert len(controls) == 1


@given(data=st.binary(max_size=200), masked=st.booleans())
def test_frame_decoder_with_any_bytes(data: bytes, masked: bool) -> None:
    decoder = FrameDecoder(expect_masked=masked, max_message_size=MAX_MESSAGE)
    try:
        decoder.feed(data)
    except FrameError as exc:
        assert exc.code in FRAME_ERROR_CODES


# --- the upgrade parser ----------------------------------------------------------------------

KEY = base64.b64encode(b"0123456789abcdef").decode()
UPGRADE = [
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC-_0123456789!#$%&'*+.^`|~", min_size=1,
                max_size=12)  # fmt: skip
header_values = st.one_of(
    st.sampled_from(["websocket", "Upgrade", "keep-alive, Upgrade", "13", "8", KEY, "", "x" * 200]),
    st.text(max_size=20),
)


TARGETS = ["/kite", "/kite?x=1", "/", "/nope", "*", "kite", "/%ff%00", "http://h/kite"]
VERSIONS = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.", "", "HTTP/1.1 extra"]


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    """Upgrade requests with parts changed, dropped, doubled or garbled."""
    method = draw(st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT", "get", "G T"]), token))
    target = draw(st.one_of(st.sampled_from(TARGETS), st.text(max_size=20)))
    version = draw(st.sampled_from(VERSIONS))
    headers = [h for h in UPGRADE if draw(st.integers(0, 7))]
    headers += draw(st.lists(st.tuples(st.one_of(token, st.sampled_from(
        [h for h, _ in UPGRADE] + ["Content-Length", "Transfer-Encoding", "Expect"])),
        header_values), max_size=4))  # fmt: skip
    if draw(st.booleans()):
        headers = draw(st.permutations(headers))
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r"]))
    lines = [f"{method} {target} {version}".rstrip()] + [f"{n}: {v}" for n, v in headers]
    if draw(st.integers(0, 5)) == 0:
        lines.insert(draw(st.integers(1, len(lines))), " folded continuation")
    head = (eol.join(lines) + eol + eol).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(head)))
        head = head[:at] + draw(st.binary(max_size=8)) + head[at:]
    return head + draw(st.sampled_from([b"", b"", b"\x81\x00", b"body"]))


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Served:
    def __init__(self, portal: Any, port: int, errors: _Errors) -> None:
        self.portal = portal
        self.port = port
        self.errors = errors

    async def _exchange(self, data: bytes) -> bytes:
        received = b""
        with anyio.fail_after(20):
            async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                try:
                    await stream.send(data)
                    await stream.send_eof()
                    while True:
                        received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    pass
        return received

    def exchange(self, data: bytes) -> bytes:
        return self.portal.call(self._exchange, data)


@pytest.fixture
def served() -> Iterator[Served]:
    server = HTTPServer(handshake_timeout=2.0, idle_timeout=2.0, close_timeout=0.2)

    async def ws_handler(ws: Any, request: Any) -> None:
        try:
            while True:
                await ws.receive()
        except Exception:
            return

    async def http_handler(request: Any, response: Any) -> None:
        await response.send(200, [("content-type", "text/plain")], b"ok")

    server.add_websocket_route("/kite", ws_handler)
    server.add_route("/kite", http_handler, methods=["POST"])
    errors = _Errors()
    logging.getLogger("kitecore.http").addHandler(errors)
    try:
        with start_blocking_portal("asyncio") as portal:
            future, port = portal.start_task(server.serve)
            try:
                yield Served(portal, port, errors)
            finally:
                future.cancel()
    finally:
        logging.getLogger("kitecore.http").removeHandler(errors)


@given(head=request_heads())
def test_any_request_head_gets_a_documented_answer(served: Served, head: bytes) -> None:
    answer = served.exchange(head)
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 "), answer[:100]
        assert int(status_line.split()[1]) in HTTP_STATUSES, status_line
    assert not served.errors.records, [r.getMessage() for r in served.errors.records]
    valid = "GET /kite HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in UPGRADE) + "\r\n"
    assert served.exchange(valid.encode()).startswith(b"HTTP/1.1 101 ")
