"""A real plugin distribution, built and installed into a fresh virtualenv, is found and loaded.

The fresh venv gets kitecore and the plugin template (``examples/plugin-template``) installed
by pip from source, with no index. Their dependencies (anyio, pluggy, stevedore, hatchling for
the build...) come from the running test environment through a ``.pth`` file: this keeps the
test offline and fast, while kitecore and the plugin themselves are real installs with real
entry-point metadata.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

from venvs import REPO, Venv, run

HELLO = REPO / "examples" / "plugin-template"

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


def test_installed_plugin_distribution_is_loaded(tmp_path: Path) -> None:
    fresh = Venv(tmp_path / "venv")
    python = fresh.python
    site = fresh.site_packages()
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
