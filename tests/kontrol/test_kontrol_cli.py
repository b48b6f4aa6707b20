"""``python -m kite_kontrol``: --initial, and a real Kontrol process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import kite_auth_token
import pytest
from kite_auth_token import read_kite_key, verify_kite_key
from kite_kontrol.__main__ import main
from kite_kontrol.keyfiles import KeyFiles

from kitecore import Authentication, Kite

#: Where kite_auth_token is imported from (installed or the source tree), for subprocesses.
PLUGIN_SRC = str(Path(kite_auth_token.__file__).resolve().parents[1])


def test_initial_writes_key_pair_and_kite_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "home"))
    data_dir = tmp_path / "data"
    argv = [
        "--initial",
        "--username",
        "admin",
        "--data-dir",
        str(data_dir),
        "--kontrol-url",
        "http://kontrol.example:4000/kite",
    ]
    assert main(argv) == 0
    pair, created = KeyFiles(data_dir).load_or_create()
    assert not created
    claims = verify_kite_key(read_kite_key(), trust=pair.public)
    assert (claims.subject, claims.issuer, claims.kontrol_url) == (
        "admin",
        "admin",
        "http://kontrol.example:4000/kite",
    )
    assert pair.id in capsys.readouterr().out
    assert main(["--initial", "--data-dir", str(data_dir)]) == 2  # --username is required


@pytest.mark.anyio
async def test_kontrol_process_serves(tmp_path, plugins, base_config):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PLUGIN_SRC, env.get("PYTHONPATH", "")])
    env["KITE_HOME"] = str(tmp_path / "home")
    env["KITE_PLUGINS"] = "websocket,memory"
    command = [
        sys.executable,
        "-m",
        "kite_kontrol",
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--username",
        "admin",
        "--open-registration",
        "--log-level",
        "WARNING",
    ]
    process = await anyio.open_process(command, env=env)
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            line = b""
            while b"\n" not in line:
                line += await process.stdout.receive()
        url = line.decode().split("serving on ", 1)[1].split()[0]
        kite = Kite("cli", "1.0.0", config=base_config.copy(), plugins=plugins)
        async with kite:
            async with kite.new_client(url) as client:
                key = await client.tell("registerMachine", {})
            auth = Authentication("kiteKey", key)
            async with kite.new_client(url, auth=auth) as client:
                assert (await client.tell("register", {"url": kite.url}))["url"] == kite.url
                answer = await client.tell("getKites", {"query": {"id": kite.id}})
                assert [k["url"] for k in answer["kites"]] == [kite.url]
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


def test_module_help_runs():
    done = subprocess.run(
        [sys.executable, "-m", "kite_kontrol", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": PLUGIN_SRC},
    )
    assert done.returncode == 0
    assert "--registration-secret" in done.stdout
