"""Issue 15 §5 against a real kite serving SockJS: 100,000-deep JSON from a peer.

Before, ``xhr_send`` answered 500 with a ``RecursionError`` traceback and the SockJS websocket
closed the session with ``c[3000,"Go away!"]``; the client's ``parse_frame`` raised
``RecursionError`` too. Now every parser of peer JSON bounds the depth
(:data:`kitecore.protocol.MAX_JSON_DEPTH`): ``xhr_send`` answers SockJS's own
``Broken JSON encoding.`` and the websocket is closed with ``3000 "Broken framing."``; the
client drops a server that sends such frames with a clean error.
"""

from __future__ import annotations

import anyio
import anyio.abc
import pytest
from app_helpers import http_request
from hardening_helpers import square_answered
from kite_transport_sockjs import FrameError, parse_frame
from kite_transport_sockjs.client import dial

from kitecore.http.client import connect_websocket

pytestmark = pytest.mark.anyio

RSS_BOUND = 200 * 1024 * 1024
DEPTH = 100_000
SOCKJS = {"KITE_PLUGINS": "websocket,sockjs"}


async def test_deep_xhr_send_is_broken_json_not_a_crash(kite_process):
    kite = await kite_process(env=SOCKJS)
    status, body = await http_request(kite.port, "POST", "/kite/000/deepxhr/xhr")
    assert (status, body) == (200, b"o\n")
    for payload in (b"[" * DEPTH, b"[" * DEPTH + b"]" * DEPTH, b'["a",' + b"{" * DEPTH):
        for _ in range(20):
            status, body = await http_request(
                kite.port, "POST", "/kite/000/deepxhr/xhr_send", payload
            )
            # SockJS's documented answer to a payload that is not an array of strings
            assert (status, body) == (500, b"Broken JSON encoding.")
    status, body = await http_request(
        kite.port, "POST", "/kite/000/deepxhr/xhr_send", b'["still open"]'
    )
    assert status == 204  # the session survived
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < RSS_BOUND


async def test_deep_websocket_frame_is_a_framing_error(kite_process):
    kite = await kite_process(env=SOCKJS)
    for _ in range(10):
        ws = await connect_websocket(f"ws://127.0.0.1:{kite.port}/kite/000/deepws/websocket")
        try:
            assert await ws.receive() == "o"
            await ws.send("[" * DEPTH + "]" * DEPTH)
            with anyio.fail_after(10):
                with pytest.raises((anyio.EndOfStream, anyio.ClosedResourceError)):
                    while True:
                        frame = await ws.receive()
                        assert not frame.startswith("c"), frame  # not a SockJS "Go away!"
            assert (ws.close_code, ws.close_reason) == (3000, "Broken framing.")
        finally:
            await ws.aclose()
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < RSS_BOUND


async def test_client_drops_a_server_that_sends_deep_frames():
    """A hostile SockJS server on a real socket opens a session, then polls answer a frame
    100,000 levels deep: the xhr-polling client ends the session with a clean error."""
    deep = ("a" + "[" * DEPTH + "]" * DEPTH + "\n").encode()
    requests = 0

    async def serve(stream) -> None:
        nonlocal requests
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        buffer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += await stream.receive()
                buffer = buffer[length:]
                requests += 1
                body = b"o\n" if requests == 1 else deep
                await stream.send(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        stream = await dial(f"http://127.0.0.1:{port}/kite", "xhr-polling")
        try:
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream) as ended:
                await stream.receive()
            assert "broken JSON in SockJS frame" in str(ended.value.__cause__)
        finally:
            await stream.aclose()
        group.cancel_scope.cancel()
    with pytest.raises(FrameError, match="broken JSON"):  # the parser itself
        parse_frame("a" + "[" * DEPTH)
