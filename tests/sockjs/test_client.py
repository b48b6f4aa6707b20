"""The SockJS client and the ``sockjs`` kite transport, against our own server."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from kite_transport_sockjs import plugin
from kite_transport_sockjs.client import (
    WebSocketClient,
    XHRPollingClient,
    XHRStreamingClient,
    dial,
    session_url,
)
from sockjs_helpers import App, eventually, post, receiver_attached

from kitecore.config import Config
from kitecore.http.client import HTTPClient
from kitecore.http.errors import HandshakeError
from kitecore.kite import Kite
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio

MODES = {"websocket": WebSocketClient, "xhr-polling": XHRPollingClient}
MODES["xhr-streaming"] = XHRStreamingClient


def test_session_url_shape() -> None:
    url = session_url("http://h:1/kite/")
    server, session = url.removeprefix("http://h:1/kite/").split("/")
    assert 100 <= int(server) <= 999
    assert len(session) == 20 and int(session, 16) >= 0


@pytest.mark.parametrize("mode", list(MODES))
async def test_dial_each_sub_transport_echoes(app: App, mode: str) -> None:
    stream = await dial(app.url("/echo"), mode, handshake_timeout=5)
    assert isinstance(stream, MODES[mode])
    try:
        await stream.send("first")
        await stream.send_many(["a", "b\u2028", '{"x": [1]}'])  # type: ignore[attr-defined]
        with anyio.fail_after(5):
            got = [await stream.receive() for _ in range(4)]
        assert got == ["first", "a", "b\u2028", '{"x": [1]}']
    finally:
        await stream.aclose()


async def test_auto_falls_back_to_xhr_polling_when_websocket_is_refused(app: App) -> None:
    url = app.url("/disabled_websocket_echo")
    with pytest.raises(HandshakeError):
        await dial(url, "websocket")
    stream = await dial(url, "auto")
    assert isinstance(stream, XHRPollingClient)
    await stream.send("hi")
    with anyio.fail_after(5):
        assert await stream.receive() == "hi"
    await stream.aclose()


@pytest.mark.parametrize("mode", list(MODES))
async def test_server_close_ends_the_stream(app: App, mode: str) -> None:
    stream = await dial(app.url("/close"), mode)
    with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
        await stream.receive()
    assert stream.close_frame is not None  # type: ignore[attr-defined]
    assert stream.close_frame.code == 3000  # type: ignore[attr-defined]
    await stream.aclose()


async def test_xhr_poll_answered_2010_is_retried(app: App) -> None:
    stream = await dial(app.url("/echo"), "xhr-polling")
    assert isinstance(stream, XHRPollingClient)
    service, session_id = app.services["/echo"], stream.base.rsplit("/", 1)[1]
    refused = anyio.Event()
    take = stream._take

    def spy(frames: Any) -> bool:  # notes the 2010 answer the client is about to retry
        retry = take(frames)
        if retry:
            refused.set()
        return retry

    stream._take = spy  # type: ignore[method-assign]
    other_answered = anyio.Event()

    async def other_poll(http: HTTPClient) -> None:
        await post(http, stream.base + "/xhr")
        other_answered.set()

    async with HTTPClient() as other, anyio.create_task_group() as tg:
        # another receiver holds the session: our polls get 2010 until it is answered
        tg.start_soon(other_poll, other)
        await receiver_attached(service, session_id)
        received: list[str] = []

        async def read() -> None:
            received.append(await stream.receive())

        tg.start_soon(read)
        with anyio.fail_after(5):
            await refused.wait()
        await stream.send("one")  # answers the other receiver's poll
        with anyio.fail_after(5):
            await other_answered.wait()
        await stream.send("two")  # ours now
        await eventually(lambda: received, 5)
    assert received == ["two"]
    await stream.aclose()


async def test_close_aborts_the_poll_in_flight(app: App) -> None:
    stream = await dial(app.url("/echo"), "xhr-polling")
    assert isinstance(stream, XHRPollingClient)
    session_id = stream.base.rsplit("/", 1)[1]
    async with anyio.create_task_group() as tg:
        outcome: list[type[BaseException]] = []

        async def read() -> None:
            try:
                await stream.receive()
            except (anyio.ClosedResourceError, anyio.EndOfStream) as exc:
                outcome.append(type(exc))

        tg.start_soon(read)
        await receiver_attached(app.services["/echo"], session_id)
        with anyio.fail_after(2):
            await stream.aclose()
    assert outcome == [anyio.ClosedResourceError]


async def test_unknown_or_bad_urls_fail_to_dial(app: App) -> None:
    with pytest.raises(OSError):
        await dial(app.url("/nothing"), "xhr-polling")
    with pytest.raises(ValueError):
        await dial("ws://127.0.0.1:1/kite")
    with pytest.raises(ValueError):
        await dial(app.url("/echo"), "carrier-pigeon")


# -- abandoned sessions ------------------------------------------------------------------------


# One backend is enough here: the bookkeeping is the same, and the test takes ~10 s.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_abandoned_sessions_time_out_and_free_memory() -> None:
    from sockjs_helpers import serve_app

    async with serve_app(heartbeat_delay=5.0, disconnect_delay=6.0) as app:
        service = app.services["/echo"]
        async with HTTPClient(max_idle_per_host=16) as http:
            await post(http, app.url("/echo/000/warmup/xhr"))
            await eventually(lambda: service.session_count == 0)
            gc.collect()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                opened: list[bytes] = []
                peak = 0

                async def open_sessions(first: int) -> None:
                    for i in range(first, 1000, 10):
                        opened.append((await post(http, app.url(f"/echo/000/ab{i}/xhr"))).body)
                        nonlocal peak
                        peak = max(peak, service.session_count)

                async with anyio.create_task_group() as tg:
                    for first in range(10):
                        tg.start_soon(open_sessions, first)
                assert opened == [b"o\n"] * 1000
                await post(http, app.url("/echo/000/ab0/xhr_send"), b'["x"]')
                assert peak > 900  # (the first ones may already be expiring)
                grown = tracemalloc.get_traced_memory()[0] - baseline
                await eventually(lambda: service.session_count == 0, 15)
                await anyio.sleep(0.2)
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - baseline
            finally:
                tracemalloc.stop()
        assert not service._live
        assert grown > 500_000  # the sessions really took memory...
        assert left < grown / 10  # ...and gave it back


# -- the kite transport ------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    monkeypatch.delenv("KITE_TRANSPORT", raising=False)
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = True
    return config


@pytest.fixture
async def served(config: Config) -> AsyncIterator[Kite]:
    plugins = load_plugins(names=("websocket",), extra_plugins=[plugin])
    kite = Kite("math", "1.0.0", config=config, plugins=plugins)

    @kite.handle("square")
    async def square(r: Any) -> float:
        a = r.args.one(float)
        return a * a

    async with kite:
        yield kite


def test_plugin_registers_sockjs_and_go_names() -> None:
    plugins = load_plugins(names=("websocket",), extra_plugins=[plugin])
    names = set(plugins.transports)
    assert {"sockjs", "WebSocket", "XHRPolling", "XHRStreaming", "websocket"} <= names


async def test_sockjs_wins_for_http_urls_and_go_names_map(
    served: Kite, monkeypatch: pytest.MonkeyPatch
) -> None:
    kite = Kite("c", "1.0.0", config=served.config.copy(), plugins=served.plugins)
    assert kite.transport_for("http://h:1/kite").name == "sockjs"
    assert kite.transport_for("https://h:1/kite").name == "sockjs"
    assert kite.transport_for("ws://h:1/kite").name == "websocket"
    monkeypatch.setenv("KITE_TRANSPORT", "XHRPolling")
    assert Kite("c", "1.0.0", plugins=served.plugins).transport_for("http://h/kite").mode == (
        "xhr-polling"
    )  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", [None, "WebSocket", "XHRPolling", "XHRStreaming"])
async def test_kite_calls_over_each_sub_transport(served: Kite, transport: str | None) -> None:
    caller = Kite("c", "1.0.0", config=served.config.copy(), plugins=served.plugins)
    with anyio.fail_after(20):
        async with caller.new_client(served.url, transport=transport) as client:
            assert client.connection.peer.transport == (transport or "sockjs")
            assert await client.tell("square", 3) == 9
            results = [0.0] * 100

            async def call(i: int) -> None:
                results[i] = await client.tell("square", i)

            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(call, i)
            assert results == [i * i for i in range(100)]
            big = "z" * (1 << 20)
            assert await client.tell("square", 2) == 4
            with pytest.raises(Exception) as info:
                await client.tell("nope", big)
            assert getattr(info.value, "type", "") == "methodNotFound"
    await eventually(lambda: not served._clients, 15)  # the server saw the session end
