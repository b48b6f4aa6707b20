"""The ``kite`` command line, run as a user would: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
import pytest

KITE = [sys.executable, "-m", "kitecore.cli"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["KITE_PLUGINS"] = "websocket,loopback"
    return env


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*KITE, *args], check=False, env=cli_env())


@pytest.mark.anyio
async def test_tell_prints_json_result(kite_server):
    done = await run_cli("tell", kite_server.url, "square", "4")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 16
    done = await run_cli("tell", kite_server.url, "echo", '{"a": [1, 2]}', "plain text")
    assert json.loads(done.stdout) == [{"a": [1, 2]}, "plain text"]


@pytest.mark.anyio
async def test_tell_reports_errors_with_nonzero_exit(kite_server):
    done = await run_cli("tell", kite_server.url, "nope")
    assert done.returncode == 1
    assert b"methodNotFound: Method not found: nope" in done.stderr
    done = await run_cli("tell", "http://127.0.0.1:1/kite", "square", "2", "--timeout", "2")
    assert done.returncode == 1
    assert b"connection refused to http://127.0.0.1:1/kite" in done.stderr


def test_plugins_lists_loaded_plugins_as_json():
    done = subprocess.run([*KITE, "plugins"], capture_output=True, env=cli_env(), check=True)
    data = json.loads(done.stdout)
    names = {plugin["name"]: plugin for plugin in data["plugins"]}
    assert set(names) == {"websocket", "loopback"}
    assert names["websocket"]["distribution"] == "kitecore"
    assert "kite_register_transports" in names["websocket"]["hooks"]
    assert data["transports"] == ["loopback", "websocket"]


def test_direct_demo_runs_the_walk_through():
    done = subprocess.run(
        [*KITE, "demo", "--direct"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "square(4) = 16" in done.stdout
    assert "kite.ping = pong" in done.stdout


def test_no_command_prints_help():
    done = subprocess.run([*KITE], capture_output=True, text=True, env=cli_env(), check=False)
    assert done.returncode == 2
    assert "tell" in done.stdout and "demo" in done.stdout
