"""The server's WebSocket upgrade: one h11 path for every request head.

Plain and unusual upgrades (LF line ends, folding, an empty body) are answered with 101 and
the bytes after the head are kept; plain HTTP follows on the same connection; bad requests
keep their 400/426 answers.
"""

from __future__ import annotations

import base64
import os

import anyio
import pytest
from anyio.abc import SocketStream
from http_helpers import RawWebSocket, read_http_response, serving
from wsproto.utilities import generate_accept_token

from kitecore.http import HTTPRequest, HTTPResponse, HTTPServer
from kitecore.http.frames import OP_TEXT, encode_frame
from kitecore.http.websocket import WebSocketConnection

pytestmark = pytest.mark.anyio


class Recorder:
    """A server with an echo WebSocket route and a plain route; records what it saw."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[HTTPRequest] = []
        self.server = HTTPServer()
        self.server.add_websocket_route("/ws", self._echo)
        self.server.add_route("/plain", self._plain)

    async def _echo(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        self.requests.append(request)
        async for message in ws:
            await ws.send(message)

    async def _plain(self, request: HTTPRequest, response: HTTPResponse) -> None:
        await response.send(200, [], b"plain " + request.method.encode())


def upgrade_head(
    key: bytes, *, path: bytes = b"/ws", extra: bytes = b"", eol: bytes = b"\r\n"
) -> bytes:
    lines = [
        b"GET " + path + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
    ]
    return eol.join(lines) + eol + extra + eol


def new_key() -> bytes:
    return base64.b64encode(os.urandom(16))


async def read_101(stream: SocketStream, key: bytes) -> RawWebSocket:
    buffer = b""
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive()
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 101"), head
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    assert headers[b"sec-websocket-accept"] == generate_accept_token(key)
    assert headers[b"upgrade"].lower() == b"websocket"
    assert b"sec-websocket-extensions" not in headers
    return RawWebSocket(stream, rest)


async def echo_roundtrip(ws: RawWebSocket, text: str) -> None:
    await ws.send_frame(OP_TEXT, text.encode())
    with anyio.fail_after(5):
        assert await ws.next_event() == text


async def test_plain_upgrade_keeps_bytes_after_the_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        key = new_key()
        # a frame in the same packet as the head must reach the handler
        first = encode_frame(OP_TEXT, b"early", mask=True)
        await stream.send(upgrade_head(key, path=b"/ws?a=1&a=2") + first)
        ws = await read_101(stream, key)
        with anyio.fail_after(5):
            assert await ws.next_event() == "early"
        await echo_roundtrip(ws, "hello")
        await stream.aclose()
    (request,) = rec.requests
    assert (request.method, request.path, request.query) == ("GET", "/ws", {"a": ["1", "2"]})
    assert request.headers.get("sec-websocket-key") == key.decode()
    assert request.remote_address.startswith("127.0.0.1:")


async def test_head_split_over_several_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        key = new_key()
        head = upgrade_head(key)
        for piece in (head[:2], head[2:30], head[30:-1], head[-1:]):
            await stream.send(piece)
            await anyio.sleep(0.01)
        await echo_roundtrip(await read_101(stream, key), "split")
        await stream.aclose()


async def test_extra_headers_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    extra = (
        b"Origin: http://example.com\r\n"
        b"USER-AGENT:kite/1.0   \r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"X-Empty:\r\n"
    )
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        key = new_key()
        await stream.send(upgrade_head(key, extra=extra))
        await echo_roundtrip(await read_101(stream, key), "extra")
        await stream.aclose()
    headers = rec.requests[0].headers
    assert headers.get("origin") == "http://example.com"
    assert headers.get("User-Agent") == "kite/1.0"
    assert headers.get("x-empty") == ""


@pytest.mark.parametrize(
    "eol, extra",
    [
        (b"\n", b""),  # LF-only line ends
        (b"\r\n", b"X-Folded: a\r\n b\r\n"),  # obsolete line folding
        (b"\r\n", b"Content-Length: 0\r\n"),  # a (empty) body
        (b"\r\n", b"Host: second\r\n"),  # a second Host header
    ],
    ids=["lf-only", "folded", "content-length", "two-hosts"],
)
async def test_unusual_requests_are_upgraded_or_refused(
    monkeypatch: pytest.MonkeyPatch, eol: bytes, extra: bytes
) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        key = new_key()
        await stream.send(upgrade_head(key, extra=extra, eol=eol))
        buffer = b""
        with anyio.fail_after(5):
            while b"\r\n\r\n" not in buffer:
                buffer += await stream.receive()
        await stream.aclose()
    if extra.startswith(b"Host"):  # h11 refuses two Host headers
        assert buffer.startswith(b"HTTP/1.1 400 ")
    else:
        assert buffer.startswith(b"HTTP/1.1 101 ")
        assert generate_accept_token(key) in buffer


async def test_plain_http_on_a_fresh_connection_is_served_with_keep_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        buffer = bytearray()
        await stream.send(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            head, body = await read_http_response(stream, buffer)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"plain GET"
        await stream.send(b"POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        with anyio.fail_after(5):
            head, body = await read_http_response(stream, buffer)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"plain POST"
        # an upgrade to a path without a websocket route is a plain request: 404
        key = new_key()
        await stream.send(upgrade_head(key, path=b"/nowhere"))
        with anyio.fail_after(5):
            head, _ = await read_http_response(stream, buffer)
        assert head.startswith(b"HTTP/1.1 404 ")
        await stream.aclose()


@pytest.mark.parametrize(
    "request_bytes, status, header",
    [
        (
            upgrade_head(b"AAAAAAAAAAAAAAAAAAAAAA==").replace(b"Version: 13", b"Version: 8"),
            426,
            b"sec-websocket-version: 13",
        ),
        (upgrade_head(b"not-base64!"), 400, None),
        (upgrade_head(base64.b64encode(b"short")), 400, None),
        (upgrade_head(new_key()).replace(b"Host: 127.0.0.1\r\n", b""), 400, None),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, None),
        (b"GARBAGE\r\n\r\n", 400, None),
    ],
    ids=["version", "key-not-base64", "key-too-short", "no-host", "bad-header", "garbage"],
)
async def test_bad_requests_keep_their_answers(
    monkeypatch: pytest.MonkeyPatch, request_bytes: bytes, status: int, header: bytes | None
) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(request_bytes)
        with anyio.fail_after(5):
            head, _ = await read_http_response(stream, bytearray())
            assert head.startswith(b"HTTP/1.1 %d " % status), head
            if header is not None:
                assert header in head.lower()
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()  # the server closed the connection
        await stream.aclose()
    assert rec.requests == []


async def test_peer_closing_inside_the_head_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    async with serving(rec.server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(upgrade_head(new_key())[:20])
        await stream.send_eof()
        with anyio.fail_after(5):
            head, _ = await read_http_response(stream, bytearray())
        assert head.startswith(b"HTTP/1.1 400 ")
        await stream.aclose()
        # the server still serves others
        other = await anyio.connect_tcp("127.0.0.1", port)
        key = new_key()
        await other.send(upgrade_head(key))
        await echo_roundtrip(await read_101(other, key), "still here")
        await other.aclose()
    assert len(rec.requests) == 1
