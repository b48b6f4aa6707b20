"""kite.js 1.0.13 and a Python kite over TLS: the kite.js client calls a Python kite over
``wss://`` (raw WebSocket) and ``https://`` (SockJS websocket and xhr-polling) with the test CA
trusted through ``NODE_EXTRA_CA_CERTS``; a Python client calls a kite.js server over
``https://``/``wss://``. kite.js's server cannot serve TLS itself (it builds its own plain
http/ws server), so a small Node TLS terminator (``tls_terminator.js``) sits in front of it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from interop_helpers import script
from kitejs_peer import make_kitejs_peer
from tls_certs import TLSFiles

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import load_plugins
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

PLUGINS = ("websocket", "sockjs")


def make_config(tls: TLSFiles, *, serve: bool) -> Config:
    config = Config()
    config.ip = "127.0.0.1"
    config.disable_authentication = True
    config.timeout = 10.0
    config.tls_ca_file = tls.ca_file
    if serve:
        config.tls_cert_file, config.tls_key_file = tls.server_cert, tls.server_key
    return config


@pytest.fixture
async def tls_kite(
    tls_files: TLSFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Kite]:
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    kite = make_kitejs_peer(make_config(tls_files, serve=True), load_plugins(names=PLUGINS))

    async with kite:
        yield kite


@pytest.mark.parametrize("mode", ["sockjs-websocket", "sockjs-xhr-polling", "websocket"])
async def test_kitejs_client_calls_python_kite_over_tls(
    tls_kite: Kite, tls_files: TLSFiles, node_env: dict[str, str], mode: str
) -> None:
    url = tls_kite.url
    assert url.startswith("https://")
    if mode == "websocket":
        url = url.replace("https://", "wss://")
    env = {**node_env, "NODE_EXTRA_CA_CERTS": tls_files.ca_file}
    with anyio.fail_after(90):
        done = await anyio.run_process(
            ["node", script("kitejs_client.js"), url, mode], env=env, check=False
        )
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0, (done.stdout, done.stderr.decode()[-2000:])
    results = json.loads(lines[-1])
    assert results["ping"] == {"result": "pong"}
    assert results["square"] == {"result": 16}
    assert results["countdown"] == {"result": "done"}
    assert results["seen"] == [5, 4, 3, 2, 1]
    assert results["failing"]["error"] == {"type": "genericError", "message": "boom"}
    assert results["concurrentOk"] is True
    assert results["bigLength"] == {"result": 1 << 20}


async def _wait_for_line(process: anyio.abc.Process, expected: bytes) -> None:
    assert process.stdout is not None
    said = b""
    while b"\n" not in said:
        said += await process.stdout.receive()
    assert said.strip() == expected, said


@pytest.fixture
async def kitejs_tls_server(
    request: pytest.FixtureRequest, node_env: dict[str, str], tls_files: TLSFiles
) -> AsyncIterator[str]:
    """A kite.js KiteServer behind the Node TLS terminator; its https/wss URL."""
    mode = request.param
    backend, front = free_port(), free_port()
    server_command = ["node", script("kitejs_server.js"), str(backend), mode]
    terminator_command = [
        "node", script("tls_terminator.js"), str(front), str(backend),
        tls_files.server_cert, tls_files.server_key,
    ]  # fmt: skip
    async with (
        await anyio.open_process(server_command, env=node_env) as server,
        await anyio.open_process(terminator_command, env=node_env) as terminator,
    ):
        try:
            with anyio.fail_after(20):
                await _wait_for_line(server, b"ready")
                await _wait_for_line(terminator, b"ready")
                while True:  # kite.js starts listening right after it prints
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", backend)).aclose()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            scheme = "https" if mode == "sockjs" else "wss"
            yield f"{scheme}://127.0.0.1:{front}/kite"
        finally:
            server.terminate()
            terminator.terminate()


@pytest.mark.parametrize(
    ("kitejs_tls_server", "transport"),
    [("sockjs", None), ("sockjs", "XHRPolling"), ("websocket", None)],
    indirect=["kitejs_tls_server"],
)
async def test_python_client_calls_kitejs_server_over_tls(
    kitejs_tls_server: str,
    transport: str | None,
    tls_files: TLSFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = kitejs_tls_server
    monkeypatch.setenv("KITE_HOME", str(tmp_path))
    kite = Kite(
        "caller",
        "1.0.0",
        config=make_config(tls_files, serve=False),
        plugins=load_plugins(names=PLUGINS),
    )
    seen: list[Any] = []
    with anyio.fail_after(60):
        async with kite.new_client(url, transport=transport) as client:
            assert await client.tell("square", 7) == 49
            assert await client.tell("callMeBack", 3, seen.append) == 3
            assert await client.tell("length", "y" * (1 << 20)) == 1 << 20
            assert client.connection is not None
            assert client.connection.peer.transport == (
                transport or ("sockjs" if url.startswith("https") else "websocket")
            )
    assert seen == [{"error": 0}, {"error": 1}, {"error": 2}]
    # and it is verified: a kite that does not trust the test CA is refused
    untrusting = make_config(tls_files, serve=False)
    untrusting.tls_ca_file = ""
    stranger = Kite("stranger", "1.0.0", config=untrusting, plugins=load_plugins(names=PLUGINS))
    with pytest.raises(Exception, match="certificate was refused"):
        async with stranger.new_client(url, transport=transport) as client:
            await client.tell("square", 2)
