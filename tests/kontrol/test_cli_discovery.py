"""The discovery commands as a user runs them: kite kontrol, register, showkey, query, tell."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import anyio
import pytest

from kitecore import Config, Kite
from kitecore.plugins import load_plugins
from kitecore.testing import free_port

KITE = [sys.executable, "-m", "kitecore.cli"]
SECRET = "cli-test-secret"


async def run_cli(home: Path, *args: str, check: bool = True):
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket,token,memory,kontrol"}
    done = await anyio.run_process([*KITE, *args], env=env, check=False)
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


@pytest.fixture
async def kontrol_process(tmp_path):
    """``kite kontrol`` in a process of its own, with a registration secret."""
    port = free_port()
    env = {
        **os.environ,
        "KITE_HOME": str(tmp_path / "kontrol-home"),
        "KITE_PLUGINS": "websocket,token,memory,kontrol",
    }
    command = [*KITE, "kontrol", "--ip", "127.0.0.1", "--port", str(port), "--username",
               "kontrol", "--data-dir", str(tmp_path / "kontrol-data"),
               "--registration-secret", SECRET]  # fmt: skip
    async with await anyio.open_process(command, env=env) as process:
        url = f"http://127.0.0.1:{port}/kite"
        with anyio.fail_after(30):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.1)
        try:
            yield url
        finally:
            process.terminate()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_register_showkey_query_and_tell(kontrol_process, tmp_path):
    home = tmp_path / "alice-home"
    done = await run_cli(home, "register", "--to", kontrol_process, "--username", "alice",
                         "--secret", "wrong", check=False)  # fmt: skip
    assert done.returncode == 1
    assert b"cannot authenticate user: wrong registration secret" in done.stderr
    assert not (home / "kite.key").exists()

    await run_cli(home, "register", "--to", kontrol_process, "--username", "alice",
                  "--secret", SECRET)  # fmt: skip
    key_file = home / "kite.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    claims = json.loads((await run_cli(home, "showkey")).stdout)
    assert claims["sub"] == "alice" and claims["iss"] == "kontrol"
    assert claims["kontrolURL"] == kontrol_process

    # a kite of alice's, authenticated by her kite.key, registers and serves square
    config = Config.from_env({"KITE_HOME": str(home)})
    config.ip, config.environment = "127.0.0.1", "production"
    kite = Kite("math", "1.2.0", config=config, plugins=load_plugins(names=["websocket", "token"]))

    @kite.handle("square")  # authentication required
    async def square(r):
        return r.args.one(float) ** 2

    async with kite:
        await kite.register(kite.url)
        lines = (await run_cli(home, "query", "--username", "alice", "--name", "math")).stdout
        number, path, url = lines.decode().split()
        assert (number, path, url) == ("1", kite.identity.path, kite.url)
        listed = json.loads((await run_cli(home, "query", "--version", "~> 1.1", "--json")).stdout)
        assert [entry["url"] for entry in listed] == [kite.url]
        assert (await run_cli(home, "query", "--name", "nothing")).stdout == b""

        # kite tell sends the kite.key: the kite trusts the Kontrol that signed it
        assert json.loads((await run_cli(home, "tell", kite.url, "square", "3")).stdout) == 9
        refused = await run_cli(home, "tell", kite.url, "square", "3", "--no-auth", check=False)
        assert refused.returncode == 1
        assert b"No authentication information is provided" in refused.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_demo_with_kontrol(tmp_path):
    done = await run_cli(tmp_path, "demo")
    out = done.stdout.decode()
    assert "Kontrol serving on" in out
    assert "second kite found 1 kite(s)" in out
    assert "square(4) = 16" in out and "kite.ping = pong" in out


def test_query_without_kite_key_is_a_clear_error(tmp_path):
    done = anyio.run(lambda: run_cli(tmp_path, "query", "--username", "x", check=False))
    assert done.returncode == 1
    assert b"no kite.key: run 'kite register' first" in done.stderr
