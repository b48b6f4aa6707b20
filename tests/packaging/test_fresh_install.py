"""Every distribution, built as a wheel and installed into a fresh virtualenv, works on its own.

The wheels of kitecore (the repository root) and of every folder under ``plugins/`` are built
once. Then:

* kitecore **alone**, with no extras and no test tools, goes into a new venv: ``import
  kitecore``, ``kite --version``, ``kite --help``, and a kite started by the venv's Python
  answers ``square`` over raw WebSocket to ``kite tell`` from the same venv;
* each plugin goes into a new venv of its own beside kitecore alone: with
  ``KITE_PLUGINS_STRICT=1`` (a plugin that fails to import is an error) its entry points load
  and ``kite plugins`` lists them.

Nothing can come from the test environment: the venvs have no system site-packages and no pip
(the test environment's pip installs into them with ``--python``), run with ``python -I``, an
environment without ``PYTHONPATH``, ``HOME`` in a temp folder and a working directory outside
the repository. Our wheels are given as files (``--find-links`` for one plugin needing another);
their third-party dependencies come from the package index, as a user's would. This is what
catches an import a distribution does not declare.
"""

from __future__ import annotations

import json
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest
from built_wheels import PLUGIN_FOLDERS, Wheel
from venvs import REPO, Venv, isolated_env, pip_install, run

# building every wheel (first test) and installing from the index take minutes on a busy machine
pytestmark = pytest.mark.timeout(600)

SERVE = """
import sys

import anyio

from kitecore import Config, Kite


async def main() -> None:
    kite = Kite("math", "1.0.0", config=Config(ip="127.0.0.1", disable_authentication=True))

    @kite.handle("square")
    async def square(request):
        number = request.args.one()
        return number * number

    async with kite:
        print(kite.url, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # serve until the test closes stdin


anyio.run(main)
"""

WHERE = """
import importlib.metadata, importlib.util, json, sys

import kitecore

print(json.dumps({
    "kitecore": kitecore.__file__,
    "prefix": sys.prefix,
    "path": sys.path,
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "pytest": importlib.util.find_spec("pytest") is not None,
}))
"""

LOAD = """
import json

from kitecore.plugins import load_plugins

print(json.dumps(load_plugins().describe()))
"""


def kite(fresh: Venv, *args: str, home: Path, **env: str) -> str:
    """Run the venv's ``kite`` console script."""
    return run([str(fresh.bin / "kite"), *args], home, isolated_env(home, **env))


def assert_isolated(fresh: Venv, home: Path) -> dict:
    """kitecore comes from the venv, and nothing on sys.path from the repo or the test env."""
    where = json.loads(run([str(fresh.python), "-I", "-c", WHERE], home, isolated_env(home)))
    site = fresh.site_packages()
    assert Path(where["kitecore"]).is_relative_to(site), where["kitecore"]
    assert Path(where["prefix"]) == fresh.path
    outside = [Path(sysconfig.get_path("purelib")), Path(sysconfig.get_path("platlib")), REPO]
    for entry in where["path"]:
        for root in outside:
            assert not Path(entry).resolve().is_relative_to(root.resolve()), (entry, root)
    return where


def test_core_alone_imports_serves_and_answers_square(
    wheels: dict[str, Wheel], tmp_path: Path
) -> None:
    core = wheels["kitecore"]
    fresh = Venv(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    pip_install(fresh, str(core.path), cwd=home)

    where = assert_isolated(fresh, home)
    ours = {wheel.name.lower() for wheel in wheels.values()}
    assert set(where["distributions"]) & ours == {"kitecore"}, "no plugin may come along"
    assert not where["pytest"], "no test tools in a plain install"

    assert kite(fresh, "--version", home=home).strip() == f"kitecore {core.version}"
    usage = kite(fresh, "--help", home=home)
    assert usage.startswith("usage: kite")
    for command in ("tell", "query", "plugins"):
        assert command in usage

    server = subprocess.Popen(
        [str(fresh.python), "-I", "-c", SERVE],
        cwd=home,
        env=isolated_env(home, KITE_PLUGINS_STRICT="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        assert url, f"the kite did not start: {server.communicate(timeout=30)[1]}"
        raw = re.sub(r"^http", "ws", url)  # ws://127.0.0.1:PORT/kite: raw WebSocket
        answer = kite(fresh, "tell", raw, "square", "4", home=home, KITE_PLUGINS_STRICT="1")
        assert json.loads(answer) == 16
    finally:
        _, errors = server.communicate(timeout=30)  # closes stdin: the kite stops
    assert server.returncode == 0, errors


@pytest.mark.parametrize("folder", PLUGIN_FOLDERS)
def test_plugin_alone_beside_the_core_loads(
    wheels: dict[str, Wheel], folder: str, tmp_path: Path
) -> None:
    plugin = wheels[folder]
    names = plugin.entry_points.get("kite", [])
    assert names, f"{folder} declares no entry point in group 'kite'"
    fresh = Venv(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    # a plugin that needs another of ours finds it among the wheels just built
    find_links = ("--find-links", str(plugin.path.parent))
    pip_install(fresh, str(wheels["kitecore"].path), str(plugin.path), cwd=home, options=find_links)
    assert_isolated(fresh, home)

    strict = isolated_env(home, KITE_PLUGINS_STRICT="1")
    loaded = json.loads(run([str(fresh.python), "-I", "-c", LOAD], home, strict))
    by_name = {entry["name"]: entry for entry in loaded}
    for name in names:
        assert name in by_name, f"entry point {name} of {plugin.name} did not load: {loaded}"
        assert by_name[name]["distribution"] == plugin.name
        assert by_name[name]["version"] == plugin.version

    listed = json.loads(kite(fresh, "plugins", home=home, KITE_PLUGINS_STRICT="1"))
    mine = [entry for entry in listed["plugins"] if entry["distribution"] == plugin.name]
    assert {entry["name"] for entry in mine} == set(names)


@pytest.mark.parametrize("key", ["kitecore", *PLUGIN_FOLDERS])
def test_every_distribution_ships_the_mit_license(wheels: dict[str, Wheel], key: str) -> None:
    wheel = wheels[key]
    assert re.search(r"^License-Expression: MIT$", wheel.metadata, re.M) or re.search(
        r"^License: MIT$", wheel.metadata, re.M
    )
    assert wheel.licenses.get("LICENSE") == (REPO / "LICENSE").read_text()
