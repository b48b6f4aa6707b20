"""kite.js 1.0.13's Kontrol client (npm) against the Python Kontrol (issue 10.5): watchKites
events arrive as its ``changes`` emitter events, cancelWatcher, fetchKites + a call with the
token + renewToken, and register(url)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from interop_helpers import script
from kite_auth_token import plugin as token_plugin
from kite_kontrol.server import Kontrol

from kitecore import Config, Kite, Query
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio

QUERY = {"username": "bob", "environment": "production", "name": "math"}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 10.0
    config.environment = "production"
    return config


@pytest.fixture
def plugins():
    return load_plugins(names=("websocket", "sockjs"), extra_plugins=[token_plugin])


@pytest.fixture
async def kontrol(config: Config, plugins) -> AsyncIterator[Kontrol]:
    kontrol_config = config.copy()
    kontrol_config.username = "kontrol"
    async with Kontrol(storage="memory://", config=kontrol_config, plugins=plugins) as running:
        yield running


class NodeKontrolClient:
    """The node script: JSON lines out, commands in."""

    def __init__(self, process: Any, stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.buffer = b""

    async def line(self, timeout: float = 30.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while b"\n" not in self.buffer:
                try:
                    self.buffer += await self.process.stdout.receive()
                except anyio.EndOfStream:
                    raise AssertionError(f"node exited: {self.stderr.read_text()}") from None
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    async def send(self, **command: Any) -> None:
        await self.process.stdin.send(json.dumps(command).encode() + b"\n")


@pytest.fixture
async def node_kontrol(kontrol, node_env, tmp_path) -> AsyncIterator[NodeKontrolClient]:
    command = [
        "node",
        script("kitejs_kontrol.js"),
        kontrol.url.replace("http://", "ws://"),
        kontrol.create_kite_key("watcher"),
        json.dumps(QUERY),
    ]
    stderr = tmp_path / "node.stderr"
    with stderr.open("wb") as errors:
        async with await anyio.open_process(command, env=node_env, stderr=errors) as process:
            try:
                yield NodeKontrolClient(process, stderr)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()


async def square(r: Any) -> float:
    n = r.args.one(float)
    return n * n


def math_kite(kontrol: Kontrol, config: Config, plugins, hostname: str) -> Kite:
    kite_config = config.copy()
    kite_config.apply_kite_key(kontrol.create_kite_key("bob"))
    kite_config.environment = "production"
    kite_config.disable_authentication = False
    kite_config.hostname = hostname
    kite = Kite("math", "1.0.0", config=kite_config, plugins=plugins)
    kite.handle("square", square)
    return kite


async def test_watch_kites_cancel_watcher_fetch_and_renew(kontrol, node_kontrol, config, plugins):
    ready = await node_kontrol.line()
    watcher_id = ready["watcherID"]
    assert watcher_id in kontrol.watch.watchers
    async with math_kite(kontrol, config, plugins, "h1") as kite:
        await kite.register()
        event = await node_kontrol.line()
        assert event["event"] == "register"
        assert event["kite"]["name"] == "math"
        assert event["kite"]["url"] == kite.url
        assert event["kite"]["token"]  # a token for the watcher, in the event

        await node_kontrol.send(cmd="fetch", query=QUERY)
        fetched = await node_kontrol.line()
        assert fetched.get("fetchError") is None, fetched
        assert "square" in fetched, fetched
        assert fetched["fetched"] == 1
        assert fetched["square"] == 9  # the call carried the token Kontrol gave
        assert isinstance(fetched["renewed"], str) and fetched["renewed"].count(".") == 2
    event = await node_kontrol.line()  # the kite left: kite.js's "deregister"
    assert event["event"] == "deregister"
    assert event["kite"]["name"] == "math"

    await node_kontrol.send(cmd="cancel", id=watcher_id)
    assert await node_kontrol.line() == {"cancelled": None}
    assert watcher_id not in kontrol.watch.watchers
    await node_kontrol.send(cmd="cancel", id=watcher_id)
    answer = await node_kontrol.line()
    assert "Watcher not found" in answer["cancelError"]["message"]


async def test_register_url(kontrol, node_kontrol):
    await node_kontrol.line()
    url = "http://127.0.0.1:7777/kite"
    await node_kontrol.send(cmd="register", url=url)
    answer = await node_kontrol.line()
    assert answer.get("registered", {}).get("url") == url, answer
    assert [r.url for r in await kontrol.storage.get(Query(username="watcher"))] == [url]
