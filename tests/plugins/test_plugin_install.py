"""A real plugin distribution, built and installed into a fresh virtualenv, is found and loaded.

The fresh venv gets kitecore and ``data/kite-hello-plugin`` installed by pip from source, with
no index. Their dependencies (anyio, pluggy, stevedore, hatchling for the build...) come from the
running test environment through a ``.pth`` file: this keeps the test offline and fast, while
kitecore and the plugin themselves are real installs with real entry-point metadata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELLO = Path(__file__).resolve().parent / "data" / "kite-hello-plugin"

PROBE = """
import json
from kitecore import plugins

import anyio
from kitecore import Config, Kite

registry = plugins.load_plugins()


async def call_plugin_method():
    # the plugin's method, served by a real kite over the built-in websocket transport
    with_websocket = plugins.load_plugins(names=["hello", "websocket"])
    config = Config(ip="127.0.0.1", disable_authentication=True, username="alice")
    async with Kite("server", "1.0.0", config=config, plugins=with_websocket) as server:
        caller = Kite("caller", "1.0.0", config=config, plugins=with_websocket)
        async with caller.new_client(server.url) as client:
            return await client.tell("hello.greet")


print(json.dumps({
    "plugins": registry.describe(),
    "transports": sorted(registry.transports),
    "loader": plugins.__file__,
    "greeting": anyio.run(call_plugin_method),
}))
"""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_installed_plugin_distribution_is_loaded(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path
        ).strip()
    )
    parent_paths = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_kite_test_parent_env.pth").write_text("\n".join(parent_paths) + "\n")

    run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--no-index", "--no-build-isolation", str(REPO), str(HELLO),
        ],
        tmp_path,
    )  # fmt: skip

    env = {
        **os.environ,
        "KITE_PLUGINS": "hello",
        "KITE_PLUGINS_STRICT": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("PYTHONPATH", None)
    report = json.loads(run([str(python), "-c", PROBE], tmp_path, env))

    assert Path(report["loader"]).is_relative_to(site), "kitecore must come from the fresh venv"
    assert report["plugins"] == [
        {
            "name": "hello",
            "module": "kite_hello_plugin",
            "distribution": "kite-hello-plugin",
            "version": "0.1.0",
            "hooks": ["kite_register_methods", "kite_register_transports"],
        }
    ]
    assert report["transports"] == ["hello"]
    assert report["greeting"] == "hello, alice"
