"""The npm kite.js client (1.0.13) reaches kites through both proxies, websocket and xhr-polling."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest
from node_packages import node_environment
from proxy_helpers import Farm

pytestmark = pytest.mark.anyio

SCRIPT = str(Path(__file__).resolve().parent / "kitejs_proxy_client.js")


@pytest.fixture(scope="module")
def node_env() -> dict[str, str]:
    return node_environment()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # node does the calling; one backend is enough here


@pytest.mark.parametrize("mode", ["websocket", "xhr-polling"])
@pytest.mark.parametrize("which", ["tunnel", "reverse"])
async def test_kitejs_calls_through_the_proxy(
    farm: Farm, node_env: dict[str, str], mode: str, which: str
) -> None:
    if which == "tunnel":
        await farm.tunnel_proxy()
        kite = farm.kite()
        public, _ = await farm.behind_tunnel(kite)
    else:
        await farm.reverse_proxy()
        kite = farm.kite(ip="127.0.0.2")
        public, _ = await farm.behind_proxy(kite)
    caller = await farm.caller()
    token = await caller.get_token({"name": "square", "username": "alice"})
    with anyio.fail_after(90):
        done = await anyio.run_process(
            ["node", SCRIPT, public, mode, token], env=node_env, stderr=subprocess.STDOUT
        )
    results = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert results == {
        "square": {"result": 16},
        "length": {"result": 1 << 20},
        "concurrentOk": True,
    }
