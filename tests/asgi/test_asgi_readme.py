"""The README's "Deploying" examples, run as written: the example files are the README's code
verbatim, and each command of the marked block (uvicorn, hypercorn on asyncio and trio) and the
Starlette example serve the kite as real server processes; SIGTERM stops them cleanly.

The only change made to a command: port 8000 becomes a free port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from test_asgi_websocket import http_get

from kitecore import Kite
from kitecore.config import Config
from kitecore.plugins import PluginRegistry
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BLOCK = re.compile(
    r"<!-- readme-test: deploying, (?P<tag>[^>]*?) -->\s*```\w+\n(?P<code>.*?)```", re.S
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the client's loop; the servers run in processes of their own


def readme_blocks() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {match["tag"].strip(): match["code"] for match in BLOCK.finditer(text)}


def readme_commands() -> list[str]:
    return [line for line in readme_blocks()["commands"].splitlines() if line.strip()]


def test_readme_shows_the_example_files_verbatim() -> None:
    blocks = readme_blocks()
    for name in ("asgi_math.py", "asgi_starlette.py"):
        assert blocks[f"examples/{name}"] == (EXAMPLES / name).read_text(encoding="utf-8")
    assert len(readme_commands()) == 3


async def _serve_command(command: str, tmp_path: Path) -> tuple[Process, int]:
    port = free_port()
    argv = shlex.split(command.replace("8000", str(port)))
    env = {**os.environ, "KITE_HOME": str(tmp_path / "home"), "KITE_PLUGINS": "websocket"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log = (tmp_path / "server.log").open("wb")
    process = await anyio.open_process(argv, cwd=EXAMPLES, env=env, stdout=log, stderr=log)
    with anyio.fail_after(30):
        while True:  # ready once it listens
            try:
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                break
            except OSError:
                assert process.returncode is None, (tmp_path / "server.log").read_text()
                await anyio.sleep(0.05)
    return process, port


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


async def _stop(process: Process, log: Path) -> None:
    """SIGTERM: the server runs lifespan shutdown and exits cleanly (uvicorn ends by raising
    the signal it caught again, so its status is -SIGTERM; hypercorn's is 0)."""
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(30):
        returncode = await process.wait()
    output = _text(log)
    assert returncode in (0, -signal.SIGTERM), output
    if returncode:
        assert "Application shutdown complete" in output


@pytest.mark.parametrize("command", readme_commands())
async def test_readme_command_serves_the_kite(
    command: str, tmp_path: Path, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    process, port = await _serve_command(command, tmp_path)
    try:
        caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
        async with caller.new_client(f"http://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 12) == 144
        status, _, body = await http_get(port, "/kite/health")
        assert (status, json.loads(body)["name"]) == (200, "math")
    finally:
        await _stop(process, tmp_path / "server.log")


async def test_starlette_example_serves_app_and_kite(
    tmp_path: Path, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    process, port = await _serve_command(
        "uvicorn asgi_starlette:app --host 127.0.0.1 --port 8000", tmp_path
    )
    try:
        status, _, body = await http_get(port, "/hello")
        assert (status, json.loads(body)) == (200, {"hello": "world"})
        caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
        async with caller.new_client(f"http://127.0.0.1:{port}/kite") as client:
            assert await client.tell("square", 3) == 9
    finally:
        await _stop(process, tmp_path / "server.log")
