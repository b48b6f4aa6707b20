"""The built-in methods, and the examples run the way the README says."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from kitecore import ArgumentError, AuthenticationError, Kite
from kitecore.builtins import ALWAYS_AUTHENTICATED
from kitecore.protocol import Authentication
from kitecore.testing import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.anyio
async def test_system_info(kite_client):
    info = await kite_client.tell("kite.systemInfo")
    assert info["state"] == "RUNNING"
    assert info["totalMemoryLimit"] > 0 and info["memoryUsage"] > 0
    assert info["diskTotal"] >= info["diskUsage"] > 0
    assert info["homeDir"] and info["uname"] == sys.platform.rstrip("0123456789")


@pytest.mark.anyio
async def test_heartbeat_pings_now_and_every_interval(kite_server, kite_client):
    kite_server.config.min_heartbeat_interval = 0.1  # the default minimum is 1 s
    pings = []
    third = anyio.Event()

    def ping():
        pings.append(anyio.current_time())
        if len(pings) == 3:
            third.set()

    assert await kite_client.tell("kite.heartbeat", 0.1, ping) is None
    with anyio.fail_after(5):
        await third.wait()
    assert pings[2] - pings[0] >= 0.15  # the first at once, then one per interval


class _KnownKey:
    """A test authenticator: the key ``letmein`` is user ``alice``."""

    async def authenticate(self, request):
        if request.auth.key != "letmein":
            raise AuthenticationError("unknown key")
        return "alice"


@pytest.fixture
async def authenticated_client(kite_server, kite_config, kite_plugins):
    """A client of ``kite_server`` that authenticates as ``alice`` (type ``test``)."""
    kite_server.authenticators["test"] = _KnownKey()
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(kite_server.url, auth=Authentication("test", "letmein")) as c:
        yield c


@pytest.mark.anyio
async def test_log_print_prompt_getpass(authenticated_client, caplog, capsys, monkeypatch):
    kite_client = authenticated_client
    caplog.set_level("INFO", logger="kitecore.builtins")
    assert await kite_client.tell("kite.log", "hello from the caller") is None
    assert "caller: hello from the caller" in caplog.text
    assert await kite_client.tell("kite.print", "héllo") == len("héllo\n".encode())
    assert "héllo" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("answer and more\n"))
    assert await kite_client.tell("kite.prompt", "Name? ") == "answer"
    monkeypatch.setattr("getpass.getpass", lambda prompt: f"secret for {prompt}")
    assert await kite_client.tell("kite.getPass", "Password: ") == "secret for Password: "


@pytest.mark.anyio
@pytest.mark.parametrize("method", ALWAYS_AUTHENTICATED)
async def test_terminal_and_log_builtins_stay_authenticated(
    kite_client, method, caplog, capsys, monkeypatch
):
    """With disable_authentication, an anonymous caller still cannot reach the terminal or log."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed by the operator\n"))
    monkeypatch.setattr("getpass.getpass", lambda prompt: "operator's password")
    caplog.set_level("INFO", logger="kitecore.builtins")
    with pytest.raises(AuthenticationError, match="No authentication information"):
        await kite_client.tell(method, "from an anonymous caller")
    assert "from an anonymous caller" not in capsys.readouterr().out
    assert "from an anonymous caller" not in caplog.text
    assert sys.stdin.read() == "typed by the operator\n"  # nothing was read
    assert await kite_client.tell("kite.systemInfo")  # the others follow the config
    assert await kite_client.tell("kite.ping") == "pong"


@pytest.mark.anyio
async def test_builtins_need_authentication_unless_disabled(make_kite, kite_config):
    guarded = kite_config.copy()
    guarded.disable_authentication = False
    server = await make_kite(config=guarded)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=server.plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("kite.ping") == "pong"  # always open
        with pytest.raises(AuthenticationError, match="No authentication information"):
            await client.tell("kite.systemInfo")
        with pytest.raises(AuthenticationError):
            await client.tell("kite.heartbeat", 1, lambda: None)


@pytest.mark.anyio
async def test_heartbeat_bad_arguments(kite_client):
    with pytest.raises(ArgumentError, match="argument 1 must be a function"):
        await kite_client.tell("kite.heartbeat", 1, None)
    with pytest.raises(ArgumentError, match="interval must be positive"):
        await kite_client.tell("kite.heartbeat", 0, lambda: None)


def test_examples_first_and_second():
    port = free_port()
    env = {**os.environ, "KITE_PORT": str(port), "KITE_IP": "127.0.0.1"}
    env["KITE_PLUGINS"] = "websocket"
    first = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "first.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/kite"
        for _ in range(100):  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if first.poll() is not None:
                    pytest.fail(f"first.py exited: {first.stdout.read()}")
                anyio.run(anyio.sleep, 0.1)
        second = subprocess.run(
            [sys.executable, str(EXAMPLES / "second.py"), url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout.split() == ["16", "pong"]
    finally:
        first.terminate()
        first.wait(10)
