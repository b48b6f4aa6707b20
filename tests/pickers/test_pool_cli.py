"""``kite tell --query PATH --picker NAME METHOD ARGS``, run as a user runs it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from pool_helpers import OWNER

KITE = [sys.executable, "-m", "kitecore.cli"]

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def run_cli(home: Path, *args: str):
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket,token,pickers"}
    with anyio.fail_after(60):
        return await anyio.run_process([*KITE, *args], env=env, check=False)


@pytest.fixture
def home(tmp_path: Path, kontrol) -> Path:
    """A KITE_HOME holding a kite.key of alice issued by ``kontrol``."""
    home = tmp_path / "alice-home"
    home.mkdir()
    (home / "kite.key").write_text(kontrol.create_kite_key("alice"))
    return home


async def test_tell_with_a_query_calls_one_matching_kite(farm, home):
    kites = [await farm.start() for _ in range(2)]
    path = f"{OWNER}/production/math"
    for picker in ("fastest", "least_latency", "random", "round_robin"):
        done = await run_cli(home, "tell", "--query", path, "--picker", picker, "square", "4")
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == "16"
    assert sum(farm.calls[k.id] for k in kites) == 4

    done = await run_cli(home, "tell", "--query", f"{path}/1.0.0", "square", "3")
    assert done.stdout.decode().strip() == "9", done.stderr.decode()


async def test_tell_with_a_query_reports_bad_input(farm, home):
    await farm.start()
    done = await run_cli(home, "tell", "--query", "bob/production/math", "--picker", "fastets",
                         "square", "4")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "kite tell: unknown picker 'fastets'; "
        "installed pickers: fastest, least_latency, random, round_robin"
    )

    done = await run_cli(home, "tell", "--query", "bob/production/nothing", "square", "4")
    assert done.returncode == 1
    assert "no kites found" in done.stderr.decode()

    done = await run_cli(home, "tell", "--picker", "random", "http://127.0.0.1:1/kite", "ping")
    assert done.returncode == 2
    assert "--picker needs --query" in done.stderr.decode()


async def test_tell_with_a_query_works_without_the_pickers_plugin(farm, home):
    """The core's own round_robin is the default picker; the plugin's names say where to go."""
    await farm.start()
    path = f"{OWNER}/production/math"
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket,token"}
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*KITE, "tell", "--query", path, "square", "4"], env=env, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == "16"
        done = await anyio.run_process(
            [*KITE, "tell", "--query", path, "--picker", "fastest", "square", "4"],
            env=env,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "kite tell: unknown picker 'fastest'; installed pickers: random, round_robin "
        "(fastest comes with kite-pickers: pip install ./plugins/kite-pickers in a checkout)"
    )
