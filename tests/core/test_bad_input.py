"""Bad input never crashes or stalls a kite: each gets a clear error or a clean close."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap

import anyio
import pytest
from raw_peer import answer_of, assert_still_serving

from kitecore import DisconnectError, Kite
from kitecore.http import connect_websocket
from kitecore.http.frames import FrameDecoder, encode_frame
from kitecore.testing import square

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("garbage", "logged"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"method": null, "arguments": []}', "method is not a string or an integer"),
        ('{"method": 1.5, "arguments": []}', "method is not a string or an integer"),
        ('{"method": "square", "arguments": {"a": 1}}', "arguments is not an array"),
        ('{"method": "square", "arguments": [], "callbacks": []}', "callbacks is not an object"),
        ("", "not valid JSON"),
    ],
)
async def test_malformed_messages_are_dropped_and_logged(kite_server, caplog, garbage, logged):
    caplog.set_level(logging.INFO, logger="kitecore.connection")
    ws = await connect_websocket(kite_server.url)
    try:
        await ws.send(garbage)
        await assert_still_serving(ws)
    finally:
        await ws.aclose()
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1
    assert logged in warnings[0].getMessage()


async def test_unknown_callback_id_is_ignored(kite_server, caplog):
    caplog.set_level(logging.INFO, logger="kitecore.connection")
    ws = await connect_websocket(kite_server.url)
    try:
        await ws.send('{"method": 4242, "arguments": [1], "callbacks": {}}')
        await assert_still_serving(ws)
    finally:
        await ws.aclose()
    assert "unknown callback 4242" in caplog.text


async def test_request_without_response_callback_runs_without_reply(make_kite):
    ran = anyio.Event()

    async def note(r):
        ran.set()
        return "ignored"

    server = await make_kite(methods={"note": note, "square": square})
    ws = await connect_websocket(server.url)
    try:
        await ws.send('{"method": "note", "arguments": [{"withArgs": []}], "callbacks": {}}')
        with anyio.fail_after(5):
            await ran.wait()
        await assert_still_serving(ws)  # the next message is the square reply, not a note one
    finally:
        await ws.aclose()


async def test_wrong_envelope_shape_gets_argument_error(kite_server):
    ws = await connect_websocket(kite_server.url)
    try:
        # two call-option objects instead of one, the first with a response callback
        await ws.send(
            json.dumps(
                {
                    "method": "square",
                    "arguments": [{"responseCallback": "[Function]", "withArgs": [2]}, 5],
                    "callbacks": {"0": [0, "responseCallback"]},
                }
            )
        )
        reply = await answer_of(ws)
        error = reply["arguments"][0]["error"]
        assert error["type"] == "argumentError"
        assert "Invalid array length" in error["message"]
        await assert_still_serving(ws)
    finally:
        await ws.aclose()


async def raw_connect(url: str):
    """A hand-made WebSocket client that can send frames our client never would."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    stream = await anyio.connect_tcp(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send(
        (
            f"GET /kite HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream, rest


async def read_close_code(stream, leftover: bytes) -> int:
    decoder = FrameDecoder(expect_masked=False, max_message_size=1 << 20)
    data = leftover
    with anyio.fail_after(5):
        while True:
            for event in decoder.feed(data) if data else ():
                if type(event).__name__ == "Close":
                    return event.code
            data = await stream.receive()


async def test_invalid_utf8_closes_with_1007_and_others_are_served(kite_server, kite_client):
    stream, leftover = await raw_connect(kite_server.url)
    async with stream:
        await stream.send(encode_frame(0x1, b'{"method":"\xff\xfe"}', mask=True))
        assert await read_close_code(stream, leftover) == 1007
    assert await kite_client.tell("square", 5) == 25


async def test_oversized_message_closes_with_1009(make_kite, kite_config, kite_plugins, caplog):
    small = kite_config.copy()
    small.max_message_size = 1000
    server = await make_kite(config=small, methods={"echo": lambda r: r.args.as_list()})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("kite.ping") == "pong"
        with pytest.raises(DisconnectError):
            await client.tell("echo", "x" * 5000)
    stream, leftover = await raw_connect(server.url)
    async with stream:
        await stream.send(encode_frame(0x1, b"y" * 5000, mask=True))
        assert await read_close_code(stream, leftover) == 1009
    # the kite still serves others
    async with caller.new_client(server.url) as client:
        assert await client.tell("kite.ping") == "pong"


SERVER_SCRIPT = textwrap.dedent(
    """
    import anyio, sys
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    kite = Kite("doomed", "1.0.0", config=Config(ip="127.0.0.1", disable_authentication=True),
                plugins=load_plugins(names=["websocket"]))

    @kite.handle("hang")
    async def hang(r):
        await anyio.sleep_forever()

    async def main():
        async with kite:
            print(kite.url, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
    """
)


async def test_vanished_peer_fails_pending_calls_with_disconnect(kite_config, kite_plugins):
    async with await anyio.open_process([sys.executable, "-c", SERVER_SCRIPT]) as process:
        try:
            output = b""
            with anyio.fail_after(30):
                while not output.endswith(b"\n"):
                    output += await process.stdout.receive()
            caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
            async with caller.new_client(output.decode().strip()) as client:
                assert await client.tell("kite.ping") == "pong"
                outcome = []
                async with anyio.create_task_group() as tg:

                    async def call_hang():
                        try:
                            await client.tell("hang", timeout=None)
                        except DisconnectError as exc:
                            outcome.append(exc)

                    tg.start_soon(call_hang)
                    await anyio.sleep(0.2)
                    process.send_signal(signal.SIGKILL)  # no close frame
                    tg.cancel_scope.deadline = anyio.current_time() + 10
                assert outcome[0].type == "disconnect"  # the call ended: the task group exited
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may be gone already
                process.kill()
