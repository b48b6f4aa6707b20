"""Discovery reaches Kontrol whichever transports Kontrol and the kite have.

A real Kontrol process started with and without the SockJS plugin (``KITE_PLUGINS``), and kites
in the test process with and without it: registering, ``get_kites`` and ``kite query`` work in
every pairing, over SockJS when both sides have it and over raw WebSocket otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from dial_helpers import RAW_ONLY, WITH_SOCKJS, plugins, serving
from kite_kontrol.testing import KontrolProcess
from kite_kontrol.testing import machine_key as kontrol_machine_key

from kitecore import Config, Kite
from kitecore.config import write_kite_key
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

SECRET = "transport-choice-secret"
KONTROL_PLUGINS = {"kontrol-raw": "websocket,memory", "kontrol-sockjs": "websocket,sockjs,memory"}
CLIENTS = {"client-raw": RAW_ONLY, "client-sockjs": WITH_SOCKJS}


@pytest.fixture(params=list(KONTROL_PLUGINS))
async def kontrol(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KontrolProcess]:
    """A Kontrol process with (or without) the SockJS plugin loaded."""
    process = KontrolProcess(
        tmp_path,
        port=free_port(),
        registration_secret=SECRET,
        plugins=KONTROL_PLUGINS[request.param],
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def machine_key(config: Config, url: str, username: str) -> str:
    """A kite.key for ``username`` from Kontrol's ``registerMachine``."""
    setup = Kite("setup", "1.0.0", config=config.copy(), plugins=plugins(RAW_ONLY))
    with anyio.fail_after(20):
        return await kontrol_machine_key(setup, url, username, SECRET)


@pytest.mark.parametrize("client_side", list(CLIENTS))
async def test_register_and_get_kites_in_every_pairing(
    kontrol: KontrolProcess, kite_config: Config, client_side: str
) -> None:
    config = kite_config.copy()
    config.apply_kite_key(await machine_key(kite_config, kontrol.url, "alice"))
    config.environment = "transports"
    config.timeout = 10
    names = CLIENTS[client_side]
    async with serving(config, names) as math:
        with anyio.fail_after(20):
            await math.register()
            [found] = await math.get_kites(username="alice", environment="transports", name="math")
        assert found.url == math.url
        assert found.remote_kite == math.identity
        client = math.kontrol_client.client
        assert client is not None and client.connection is not None
        kontrol_has_sockjs = "sockjs" in kontrol.env["KITE_PLUGINS"]
        expected = "sockjs" if "sockjs" in names and kontrol_has_sockjs else "websocket"
        assert client.connection.peer.transport == expected
        await math.kontrol_client.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_kite_query_and_tell_with_sockjs_reach_a_kontrol_and_kite_without_it(
    tmp_path: Path, kite_config: Config
) -> None:
    """The issue's walk-through: the user's CLI has the SockJS plugin; Kontrol and the kite
    it finds serve raw WebSocket only."""
    kontrol = KontrolProcess(
        tmp_path, port=free_port(), registration_secret=SECRET, plugins="websocket,memory"
    )
    await kontrol.start()
    try:
        key = await machine_key(kite_config, kontrol.url, "alice")
        home = tmp_path / "alice-home"
        write_kite_key(key, home / "kite.key")
        config = kite_config.copy()
        config.apply_kite_key(key)
        async with serving(config, RAW_ONLY) as math:
            with anyio.fail_after(20):
                await math.register()
            env = {
                **os.environ,
                "KITE_HOME": str(home),
                "KITE_PLUGINS": "websocket,sockjs,token",
                "KITE_TIMEOUT": "60",  # waiting that long would fail the test's own bound
            }
            kite_cli = [sys.executable, "-m", "kitecore.cli"]
            with anyio.fail_after(30):
                query = await anyio.run_process(
                    [*kite_cli, "query", "--username", "alice", "--name", "math", "--json"],
                    env=env,
                    check=False,
                )
            assert query.returncode == 0, query.stderr.decode()
            [entry] = json.loads(query.stdout)
            assert entry["url"] == math.url
            with anyio.fail_after(30):
                told = await anyio.run_process(
                    [*kite_cli, "tell", entry["url"], "square", "7"], env=env, check=False
                )
            assert told.returncode == 0, told.stderr.decode()
            assert json.loads(told.stdout) == 49
    finally:
        await kontrol.stop()
