"""Kontrol keeps its own identity (issue 9.4): its username lives in its data directory, and a
user's kite.key in the same ``KITE_HOME`` never changes who Kontrol is."""

from __future__ import annotations

import json
import subprocess

import pytest
from cli_helpers import KITE, cli_env, kite_kontrol, run_cli
from kite_kontrol.identity import IdentityFile
from kite_kontrol.keyfiles import KeyFiles

from kitecore import Config, Kite
from kitecore.plugins import load_plugins
from kitecore.testing import free_port

SECRET = "identity-test-secret"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_kontrol_restarted_after_kite_register_in_its_home_is_still_itself(tmp_path):
    home, data = tmp_path / "home", tmp_path / "kontrol-data"
    port = free_port()
    kontrol_args = ("--data-dir", str(data), "--registration-secret", SECRET)
    async with kite_kontrol(home, port, *kontrol_args, "--username", "admin") as url:
        done = await run_cli(home, "register", "--to", url, "--username", "alice",
                             "--secret", SECRET)  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
    claims = json.loads((await run_cli(home, "showkey")).stdout)
    assert (claims["sub"], claims["iss"]) == ("alice", "admin")  # alice's key, in Kontrol's home

    # restarted without --username: Kontrol is still admin (from its data directory)
    async with kite_kontrol(home, port, *kontrol_args) as url:
        config = Config.from_env({"KITE_HOME": str(home)})
        config.ip, config.environment = "127.0.0.1", "production"
        plugins = load_plugins(names=["websocket", "token"])
        kite = Kite("math", "1.0.0", config=config, plugins=plugins)

        @kite.handle("square")  # authentication required: a token from Kontrol
        async def square(r):
            return r.args.one(float) ** 2

        async with kite:
            await kite.register(kite.url)
            done = await run_cli(home, "tell", "--query", "alice/production/math", "square", "3")
            assert done.returncode == 0, done.stderr.decode()
            assert json.loads(done.stdout) == 9


def test_initial_then_serve_without_username_keeps_the_initial_username(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    env = cli_env(home)
    initial = subprocess.run(
        [*KITE, "kontrol", "--initial", "--username", "root", "--data-dir", str(data)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert initial.returncode == 0, initial.stderr
    assert IdentityFile(data).read() == "root"
    assert IdentityFile(data).resolve(None, has_keys=True) == "root"


def test_a_different_username_for_an_existing_kontrol_is_refused(tmp_path):
    identity = IdentityFile(tmp_path)
    assert identity.resolve("admin") == "admin"
    assert identity.resolve(None) == "admin"
    assert identity.resolve("admin") == "admin"
    with pytest.raises(ValueError, match="start it with --username admin"):
        identity.resolve("alice")
    assert IdentityFile(tmp_path / "new").resolve(None) == "kontrol"


def test_keys_without_an_identity_file_need_a_username_once(tmp_path):
    KeyFiles(tmp_path).load_or_create()
    with pytest.raises(ValueError, match="start it once with --username NAME"):
        IdentityFile(tmp_path).resolve(None, has_keys=True)
    assert IdentityFile(tmp_path).resolve("admin", has_keys=True) == "admin"


def test_kite_kontrol_refuses_another_username_with_one_line(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    IdentityFile(data).write("admin")
    done = subprocess.run(
        [*KITE, "kontrol", "--username", "alice", "--data-dir", str(data), "--port", "0",
         "--ip", "127.0.0.1", "--open-registration"],
        env=cli_env(home), capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "kontrol: the Kontrol in" in done.stderr and "--username admin" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_kontrol_without_config_ignores_the_kite_key_in_kite_home(tmp_path, monkeypatch):
    from kite_auth_token import create_kite_key, write_kite_key
    from kite_kontrol.keyfiles import new_key_pair
    from kite_kontrol.server import Kontrol

    pair = new_key_pair()
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KITE_IP", "127.0.0.1")
    key = create_kite_key(
        username="alice", issuer="someone", kontrol_url="http://elsewhere:4000/kite",
        public_key=pair.public, private_key=pair.private,
    )  # fmt: skip
    write_kite_key(key)
    kontrol = Kontrol(data_dir=tmp_path / "data", plugins=load_plugins(names=["websocket"]))
    assert kontrol.config.kite_key == ""
    async with kontrol:
        assert kontrol.username == "kontrol"
        assert kontrol.kontrol_url == kontrol.url
