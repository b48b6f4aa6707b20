"""kite-kontrol as a plugin: ``kite kontrol`` comes through ``kite_register_commands``, ``kite
demo`` runs Kontrol's walk-through through ``kite_demo``, ``python -m kite_kontrol`` runs."""

from __future__ import annotations

import os
import subprocess
import sys

from kitecore.plugins import load_plugins

KITE = [sys.executable, "-m", "kitecore.cli"]


def run(*command: str, plugins: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITE_PLUGINS": plugins, "KITE_PLUGINS_STRICT": "1"}
    return subprocess.run(
        list(command), capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_plugin_registers_the_kontrol_command():
    registry = load_plugins(names=["kontrol"], strict=True)
    command = registry.commands["kontrol"]
    assert command.plugin == "kontrol"
    info = {plugin.name: plugin for plugin in registry.plugins}["kontrol"]
    assert info.distribution == "kite-kontrol"
    assert {"kite_register_commands", "kite_demo"} <= set(info.hooks)


def test_kite_kontrol_command_and_module_show_the_same_options():
    via_kite = run(*KITE, "kontrol", "--help", plugins="websocket,memory,token,kontrol")
    via_module = run(sys.executable, "-m", "kite_kontrol", "--help", plugins="websocket")
    assert via_kite.returncode == 0, via_kite.stderr
    assert via_module.returncode == 0, via_module.stderr
    for option in ("--storage", "--data-dir", "--registration-secret", "--open-registration"):
        assert option in via_kite.stdout and option in via_module.stdout


def test_kite_kontrol_is_not_a_command_without_the_plugin():
    done = run(*KITE, "kontrol", "--help", plugins="websocket")
    assert done.returncode == 2
    assert "Kontrol comes with the kite-kontrol plugin, which is not loaded" in done.stderr


def test_demo_runs_the_walk_through_with_kontrol():
    done = run(*KITE, "demo", plugins="websocket,memory,token,kontrol")
    assert done.returncode == 0, done.stderr
    assert "Kontrol serving on http://127.0.0.1:" in done.stdout
    assert "second kite found 1 kite(s)" in done.stdout
    assert "square(4) = 16" in done.stdout
    assert "Kontrol is not installed" not in done.stdout
