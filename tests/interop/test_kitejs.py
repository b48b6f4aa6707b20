"""A Python kite and the real kite.js 1.0.13 calling each other over SockJS and raw WebSocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from interop_helpers import script
from kitejs_peer import make_kitejs_peer

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import load_plugins
from kitecore.protocol.errors import KiteError
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

PLUGINS = ("websocket", "sockjs")


def make_config() -> Config:
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = True
    config.timeout = 10.0
    return config


@pytest.fixture
async def python_kite(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kite]:
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    kite = make_kitejs_peer(make_config(), load_plugins(names=PLUGINS))

    async with kite:
        yield kite


@pytest.mark.parametrize("mode", ["sockjs-websocket", "sockjs-xhr-polling", "websocket"])
async def test_kitejs_client_calls_python_kite(
    python_kite: Kite, node_env: dict[str, str], mode: str
) -> None:
    url = python_kite.url
    if mode == "websocket":
        url = url.replace("http://", "ws://")
    with anyio.fail_after(90):
        done = await anyio.run_process(
            ["node", script("kitejs_client.js"), url, mode], env=node_env, check=False
        )
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0, (done.stdout, done.stderr.decode()[-2000:])
    results = json.loads(lines[-1])
    assert results["ping"] == {"result": "pong"}
    assert results["square"] == {"result": 16}
    assert results["squareScalar"] == {"result": 25}
    assert results["countdown"] == {"result": "done"}
    assert results["seen"] == [5, 4, 3, 2, 1]
    assert results["missing"]["error"]["type"] == "methodNotFound"
    assert results["failing"]["error"] == {"type": "genericError", "message": "boom"}
    assert results["concurrentOk"] is True
    assert results["bigLength"] == {"result": 1 << 20}


@pytest.fixture
async def kitejs_server(
    request: pytest.FixtureRequest, node_env: dict[str, str]
) -> AsyncIterator[tuple[str, str]]:
    """A kite.js KiteServer on a free port: (mode, URL)."""
    port = free_port()
    mode = request.param
    command = ["node", script("kitejs_server.js"), str(port), mode]
    async with await anyio.open_process(command, env=node_env) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(20):
                assert (await process.stdout.receive()).strip() == b"ready"
                while True:  # kite.js starts listening right after it prints
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            scheme = "http" if mode == "sockjs" else "ws"
            yield mode, f"{scheme}://127.0.0.1:{port}/kite"
        finally:
            process.terminate()


@pytest.mark.parametrize(
    ("kitejs_server", "transport"),
    [("sockjs", None), ("sockjs", "XHRPolling"), ("websocket", None)],
    indirect=["kitejs_server"],
)
async def test_python_client_calls_kitejs_server(
    kitejs_server: tuple[str, str],
    transport: str | None,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mode, url = kitejs_server
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    kite = Kite("caller", "1.0.0", config=make_config(), plugins=load_plugins(names=PLUGINS))
    expected = {"sockjs": transport or "sockjs", "websocket": "websocket"}[mode]
    assert (transport or kite.transport_for(url).name) == expected
    seen: list[int] = []
    with anyio.fail_after(60):
        async with kite.new_client(url, transport=transport) as client:
            assert await client.tell("square", 7) == 49
            assert await client.tell("concat", "a", "b") == "ab"
            assert await client.tell("callMeBack", 3, seen.append) == 3
            results = [0] * 200

            async def call(i: int) -> None:
                results[i] = await client.tell("square", i)

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(call, i)
            assert results == [i * i for i in range(200)]
            assert await client.tell("length", "y" * (1 << 20)) == 1 << 20
            with pytest.raises(KiteError) as info:
                await client.tell("fail", "bad")
            assert info.value.type == "genericError"
            # kite.js never answers unknown methods: our timeout must fire
            with pytest.raises(KiteError) as info:
                await client.tell("noSuchMethod", timeout=0.5)
            assert info.value.type == "timeout"
            assert await client.tell("square", 3) == 9  # the connection is still fine
    # kite.js wraps every callback invocation it sends as one {"error": a0, "result": a1}
    assert seen == [{"error": 0}, {"error": 1}, {"error": 2}]


@pytest.mark.parametrize(
    ("kitejs_server", "transport"),
    [("sockjs", None), ("websocket", None)],
    indirect=["kitejs_server"],
)
async def test_kitejs_countdown_callbacks_all_run_before_tell_returns(
    kitejs_server: tuple[str, str],
    transport: str | None,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10.6: kite.js sends 50 callback invocations, then the reply; when ``tell``
    returns, all 50 have run, in wire order (synchronous and asynchronous callbacks)."""
    _, url = kitejs_server
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    kite = Kite("caller", "1.0.0", config=make_config(), plugins=load_plugins(names=PLUGINS))
    with anyio.fail_after(60):
        async with kite.new_client(url, transport=transport) as client:
            seen: list[Any] = []
            assert await client.tell("countdown", 50, seen.append) == "done"
            assert seen == [{"error": None, "result": i} for i in range(50, 0, -1)]

            finished: list[int] = []

            async def record(response: dict[str, Any]) -> None:
                await anyio.lowlevel.checkpoint()  # an awaiting callback still runs first
                finished.append(response["result"])

            for _ in range(3):
                finished.clear()
                assert await client.tell("countdown", 50, record) == "done"
                assert finished == list(range(50, 0, -1))


@pytest.mark.parametrize("kitejs_server", ["websocket", "sockjs"], indirect=True)
async def test_kitejs_server_answers_calls_carrying_trace_metadata(
    kitejs_server: tuple[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call options' ``metadata`` field (W3C trace context from kite-tracing-otel) is
    ignored by kite.js 1.0.13's server: calls, errors and callbacks work as without it."""
    from kite_tracing_otel import KiteTracing
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kitecore.interceptors import ClientCall

    _, url = kitejs_server
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kite = Kite("caller", "1.0.0", config=make_config(), plugins=load_plugins(names=PLUGINS))
    KiteTracing(tracer_provider=provider).install(kite)
    sent: list[dict[str, str]] = []

    async def record(call: ClientCall, proceed: Any) -> Any:
        result = await proceed()  # inner to tracing: sees what was sent
        sent.append(dict(call.metadata))
        return result

    kite.add_interceptor(client=record)
    seen: list[Any] = []
    with anyio.fail_after(60):
        async with kite.new_client(url) as client:
            assert await client.tell("square", 7) == 49
            assert await client.tell("callMeBack", 2, seen.append) == 2
            with pytest.raises(KiteError) as info:
                await client.tell("fail", "bad")
            assert info.value.type == "genericError"
    assert all(entry.get("traceparent", "").startswith("00-") for entry in sent)
    assert len(sent) == 2  # the failed call raised through the recorder
    assert seen == [{"error": 0}, {"error": 1}]
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["kite/square", "kite/callMeBack", "kite/fail"]
    provider.shutdown()
