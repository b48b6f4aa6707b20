"""``kite demo`` with the core alone: no Kontrol, so it runs the direct demo and says so."""

from __future__ import annotations

import os
import subprocess
import sys

KITE = [sys.executable, "-m", "kitecore.cli"]


def run_demo(*args: str, plugins: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITE_PLUGINS": plugins}
    return subprocess.run(
        [*KITE, "demo", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_demo_without_kontrol_runs_the_direct_walk_through_and_says_so():
    done = run_demo(plugins="websocket,loopback")
    assert done.returncode == 0, done.stderr
    assert "Kontrol is not installed" in done.stdout
    assert "pip install ./plugins/kite-kontrol" in done.stdout
    assert "square(4) = 16" in done.stdout
    assert "kite.ping = pong" in done.stdout


def test_direct_demo_does_not_mention_kontrol():
    done = run_demo("--direct", "--number", "3", plugins="websocket,loopback")
    assert done.returncode == 0, done.stderr
    assert "Kontrol" not in done.stdout
    assert "square(3) = 9" in done.stdout
