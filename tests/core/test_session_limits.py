"""One message never tears a connection down, and a peer cannot make a kite hold callbacks
without bound (issue 15, items 3 and 4), attacked over real sockets."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from raw_peer import CALL_SQUARE, answer_of, assert_still_serving

from kitecore import CallbackLimitError, InvalidResponseError, Kite
from kitecore.config import Config
from kitecore.http import connect_websocket
from kitecore.protocol.envelope import RequestEncoder

pytestmark = pytest.mark.anyio

BIG = "7" * 5000  # longer than int() converts (4,300 digits)


# ------------------------------------------------------------------ oversized integers (15.4)


async def test_a_huge_integer_in_a_request_gets_an_argument_error(kite_server, caplog):
    caplog.set_level(logging.WARNING, logger="kitecore.connection")
    ws = await connect_websocket(kite_server.url)
    try:
        await ws.send(CALL_SQUARE.replace('"withArgs": [3]', f'"withArgs": [{BIG}]'))
        reply = await answer_of(ws)
        assert reply["method"] == 7
        error = reply["arguments"][0]["error"]
        assert error["type"] == "argumentError"
        assert "more than 4300 digits" in error["message"]
        await assert_still_serving(ws)
    finally:
        await ws.aclose()
    assert "malformed call" in caplog.text


@pytest.mark.parametrize(
    "message",
    [
        # no response callback to answer: dropped and logged
        f'{{"method": "square", "arguments": [{{"withArgs": [{BIG}]}}], "callbacks": {{}}}}',
        # a huge integer as a callback id, and as a callback path element
        f'{{"method": {BIG}, "arguments": [], "callbacks": {{}}}}',
        '{"method": "square", "arguments": [{"withArgs": [1]}], '
        f'"callbacks": {{"3": [0, "withArgs", {BIG}]}}}}',
        f'{{"method": 5, "arguments": [{BIG}], "callbacks": {{}}}}',
    ],
)
async def test_a_huge_integer_elsewhere_is_dropped_and_logged(kite_server, caplog, message):
    caplog.set_level(logging.WARNING, logger="kitecore.connection")
    ws = await connect_websocket(kite_server.url)
    try:
        await ws.send(message)
        await assert_still_serving(ws)  # the next message is the square reply
    finally:
        await ws.aclose()
    assert "malformed" in caplog.text


async def test_a_huge_string_path_element_is_skipped(kite_server):
    ws = await connect_websocket(kite_server.url)
    try:
        message = json.loads(CALL_SQUARE)
        message["callbacks"]["8"] = [0, "withArgs", "1" * 5000]
        await ws.send(json.dumps(message))
        reply = await answer_of(ws)
        assert reply["arguments"] == [{"error": None, "result": 9}]
        await assert_still_serving(ws)
    finally:
        await ws.aclose()


async def test_a_reply_with_a_huge_integer_fails_the_call_at_once(
    make_kite, kite_config, kite_plugins
):
    """A kite whose answer holds an integer we refuse: the caller gets ``invalidResponse``."""

    async def huge(r):
        return r.args.one()

    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    server = await make_kite(methods={"huge": huge})
    async with caller.new_client(server.url) as client:
        connection = client.connection
        encoder = RequestEncoder(caller.identity_wire, None)
        pending, callback_id = connection.call("huge", encoder, ["placeholder"], {})
        # the reply to the call above is overtaken by a forged one carrying a huge integer
        connection.handle_text(
            f'{{"method": {callback_id}, "arguments": [{{"result": {BIG}}}], "callbacks": {{}}}}'
        )
        with pytest.raises(InvalidResponseError) as info:
            await connection.wait_response(pending, callback_id, 5)
        assert info.value.type == "invalidResponse"
        assert "4300 digits" in info.value.message
        assert connection.pending_callbacks == 0
        assert await client.tell("kite.ping") == "pong"


async def test_a_lone_surrogate_is_echoed_back_escaped(kite_server):
    """``"\\ud800"`` is valid JSON but not valid UTF-8 once decoded: the reply still goes out."""
    ws = await connect_websocket(kite_server.url)
    try:
        await ws.send(
            '{"method": "echo", "arguments": [{"withArgs": ["\\ud800"], '
            '"responseCallback": "[Function]"}], "callbacks": {"7": [0, "responseCallback"]}}'
        )
        reply = await answer_of(ws)
        assert reply["arguments"] == [{"error": None, "result": ["\ud800"]}]
        await assert_still_serving(ws)
    finally:
        await ws.aclose()


# ------------------------------------------------------------------ the callback cap (15.3)

SERVER_SCRIPT = textwrap.dedent(
    """
    import anyio
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins
    from kitecore.testing import echo, square

    config = Config(ip="127.0.0.1", disable_authentication=True)
    config.read_environment(__import__("os").environ)
    kite = Kite("holder", "1.0.0", config=config, plugins=load_plugins(names=["websocket"]))
    kite.handle("echo", echo)
    kite.handle("square", square)

    async def main():
        async with kite:
            print(kite.url, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
    """
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover


@contextlib.asynccontextmanager
async def server_process(env: dict[str, str] | None = None):
    environment = dict(__import__("os").environ, **(env or {}))
    async with await anyio.open_process(
        [sys.executable, "-c", SERVER_SCRIPT], env=environment
    ) as process:
        try:
            output = b""
            with anyio.fail_after(30):
                while not output.endswith(b"\n"):
                    output += await process.stdout.receive()
            yield process, output.decode().strip()
        finally:
            process.kill()


def many(count: int) -> list:
    return [lambda *args: None for _ in range(count)]


async def test_echoing_callbacks_hits_the_documented_cap_and_memory_stays_bounded(
    kite_config, kite_plugins
):
    """The issue's attack: ``echo`` with 10,000 callbacks, 30 times, on one connection."""
    greedy = kite_config.copy()
    greedy.max_callbacks = 1_000_000  # the attacker lifts its own limit
    attacker = Kite("attacker", "1.0.0", config=greedy, plugins=kite_plugins)
    bystander = Kite("bystander", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with server_process() as (process, url):
        async with attacker.new_client(url) as client:
            assert await client.tell("square", 2) == 4
            baseline = rss_kib(process.pid)
            # the first 10,000 fit under the default cap of 10,000 ...
            assert len(await client.tell("echo", *many(10_000))) == 10_000
            after_first = rss_kib(process.pid)
            # ... and every further one is refused with the documented error
            for _ in range(29):
                with pytest.raises(CallbackLimitError) as info:
                    await client.tell("echo", *many(10_000))
                assert info.value.type == "callbackLimitError"
                assert "too many callbacks on this connection (limit 10000)" in info.value.message
            after_all = rss_kib(process.pid)
            # the connection still serves, and calls without functions are untouched
            assert await client.tell("square", 3) == 9
            assert await client.tell("echo", 1, "two") == [1, "two"]
        async with bystander.new_client(url) as other:
            assert await other.tell("square", 5) == 25
            assert len(await other.tell("echo", *many(100))) == 100
    # 29 refused echoes leave nothing behind (300,000 held entries would be well over 30 MB)
    assert after_all - after_first < 16 * 1024, (baseline, after_first, after_all)


async def test_the_cap_is_set_by_kite_max_callbacks(kite_config, kite_plugins):
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with server_process({"KITE_MAX_CALLBACKS": "50"}) as (_, url):
        async with caller.new_client(url) as client:
            assert len(await client.tell("echo", *many(30))) == 30
            with pytest.raises(CallbackLimitError, match=r"limit 50\)"):
                await client.tell("echo", *many(30))  # 60 > 50: none of them is kept
            assert len(await client.tell("echo", *many(20))) == 20  # 30 + 20 fit
            with pytest.raises(CallbackLimitError):
                await client.tell("echo", lambda: None)
            assert await client.tell("square", 4) == 16


async def test_a_caller_past_its_own_cap_fails_locally_and_keeps_nothing(
    make_kite, kite_config, kite_plugins
):
    server = await make_kite(methods={"echo": lambda r: "ok"})
    small = kite_config.copy()
    small.max_callbacks = 5
    caller = Kite("caller", "1.0.0", config=small, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with pytest.raises(CallbackLimitError):
            await client.tell("echo", *many(6))
        assert client.connection.pending_callbacks == 0
        assert await client.tell("echo", *many(5)) == "ok"
        assert client.connection.pending_callbacks == 5


def test_config_reads_kite_max_callbacks():
    config = Config()
    assert config.max_callbacks == 10_000
    config.read_environment({"KITE_MAX_CALLBACKS": "123"})
    assert config.max_callbacks == 123
    with pytest.raises(ValueError, match="KITE_MAX_CALLBACKS"):
        config.read_environment({"KITE_MAX_CALLBACKS": "lots"})
