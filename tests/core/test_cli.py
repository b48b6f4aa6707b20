"""The ``kite`` command line, run as a user would: a separate process."""

from __future__ import annotations

import base64
import json
import os
import socket
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
    assert b"http://127.0.0.1:1/kite" in done.stderr
    assert b"connection refused" in done.stderr
    assert len(done.stderr.splitlines()) == 1


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


# --- user mistakes: one line on stderr, a non-zero exit, never a traceback (issue 9, item 7)


def run_cli_sync(*args: str, env: dict[str, str] | None = None, **options):
    return subprocess.run(
        [*KITE, *args],
        capture_output=True,
        text=True,
        env={**cli_env(), **(env or {})},
        timeout=60,
        check=False,
        **options,
    )


def assert_one_line(done: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """The command failed with ``code`` and said so in one line holding ``fragments``."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["tell", "127.0.0.1:4000", "square", "2"],
            {},
            "kite tell: kite URL '127.0.0.1:4000' has no scheme: "
            "did you mean http://127.0.0.1:4000/kite?",
        ),
        (
            ["tell", "http://127.0.0.1:4000", "square", "2"],
            {},
            "kite tell: kite URL 'http://127.0.0.1:4000' has no path: kites serve on /kite, "
            "did you mean http://127.0.0.1:4000/kite?",
        ),
        (
            ["query", "--kontrol-url", "localhost:4000"],
            {},
            "did you mean http://localhost:4000/kite?",
        ),
        (
            ["register", "--to", "127.0.0.1:4000", "--username", "alice", "--secret", "s"],
            {},
            "did you mean http://127.0.0.1:4000/kite?",
        ),
        (
            ["tell", "http://127.0.0.1:1/kite", "echo", "4", "{a:1}"],
            {},
            "kite tell: argument 2 '{a:1}' is not valid JSON",
        ),
        (
            ["tell", "http://127.0.0.1:1/kite", "square", "2"],
            {"KITE_TIMEOUT": "soon"},
            "kite tell: KITE_TIMEOUT='soon' is invalid: expected a duration above zero",
        ),
        (
            ["tell", "http://127.0.0.1:1/kite", "square", "2"],
            {"KITE_PORT": "sixty"},
            "kite tell: KITE_PORT='sixty' is invalid: expected a port number",
        ),
        (
            ["tell", "http://127.0.0.1:1/kite", "square", "2"],
            {"KITE_PORT": "70000"},
            "kite tell: KITE_PORT='70000' is invalid",
        ),
        (
            ["tell", "--timeout", "0", "http://127.0.0.1:1/kite", "square", "2"],
            {},
            "argument --timeout: '0' is not a timeout",
        ),
    ],
)
def test_user_mistakes_get_one_clear_line(args, env, expected):
    done = run_cli_sync(*args, env=env)
    line = assert_one_line(done, 2)
    assert expected in line


@pytest.mark.anyio
async def test_malformed_json_argument_is_refused_with_a_hint_to_quote(kite_server):
    done = await run_cli("tell", kite_server.url, "echo", '{"a": 1')
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines() == [
        "kite tell: argument 1 '{\"a\": 1' is not valid JSON (Expecting ',' delimiter); put "
        "JSON in single quotes so the shell keeps its double quotes, e.g. '{\"a\": 1}', or send "
        "text as a JSON string, e.g. '\"{a: 1}\"'"
    ]
    assert "must be valid JSON" in " ".join(
        (await run_cli("tell", "--help")).stdout.decode().split()
    )
    # text that does not look like JSON is still sent as a plain string, and JSON as JSON
    done = await run_cli("tell", kite_server.url, "echo", "hello", '"{a:1}"', "[1]")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["hello", "{a:1}", [1]]


@pytest.fixture
def busy_port():
    """A port some other program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_busy_port_at_kite_run_is_one_line(busy_port, tmp_path):
    script = tmp_path / "busy.py"
    script.write_text(
        "from kitecore import Kite\n"
        "k = Kite('first', '1.0.0')\n"
        f"k.config.ip, k.config.port = '127.0.0.1', {busy_port}\n"
        "k.run()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert_one_line(
        done,
        1,
        f"kite first: cannot listen on 127.0.0.1:{busy_port}: the address is already in use",
    )


@pytest.mark.anyio
async def test_busy_port_raises_listen_error_naming_the_address(busy_port, kite_config):
    from kitecore import Kite
    from kitecore.kite import ListenError

    config = kite_config.copy()
    config.ip, config.port = "127.0.0.1", busy_port
    with pytest.raises(ListenError, match=f"^cannot listen on 127.0.0.1:{busy_port}: "):
        async with Kite("first", "1.0.0", config=config):
            pass


def test_showkey_into_a_closed_pipe_ends_quietly(tmp_path):
    claims = {"sub": "alice", "iss": "kontrol", "kontrolKey": "k", "jti": "id", "aud": "/"}
    token = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "RS256", "typ": "JWT"}, claims)
    )
    (tmp_path / "kite.key").write_text(token + ".c2ln")
    read_end, write_end = os.pipe()
    os.close(read_end)  # `kite showkey | head` after head has exited
    try:
        done = subprocess.run(
            [*KITE, "showkey"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**cli_env(), "KITE_HOME": str(tmp_path)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # like a command killed by SIGPIPE


def test_verbose_flag_works_after_the_command():
    done = run_cli_sync("tell", "-vv", "http://127.0.0.1:1/kite", "square", "2")
    assert done.returncode == 1, done.stderr
    assert "DEBUG" in done.stderr
    assert "kite tell: can't connect to http://127.0.0.1:1/kite: connection refused" in done.stderr
    done = run_cli_sync("plugins", "-v")
    assert done.returncode == 0, done.stderr


# --- fail fast (issue 9, item 6)


def test_timeout_bounds_connecting_to_a_silent_listener(busy_port):
    """A listener that accepts and never answers: --timeout, not the 15 s handshake."""
    url = f"http://127.0.0.1:{busy_port}/kite"
    done = run_cli_sync("tell", "--timeout", "1", url, "square", "2")
    assert_one_line(done, 1, f"kite tell: timed out after 1s connecting to {url}")


def test_kontrol_without_its_plugin_says_what_to_install():
    done = subprocess.run([*KITE, "kontrol", "--port", "0"], capture_output=True, env=cli_env())
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "kite: Kontrol comes with the kite-kontrol plugin, which is not loaded: "
        "pip install ./plugins/kite-kontrol ./plugins/kite-auth-token (from a kite checkout), "
        "or add 'kontrol' to KITE_PLUGINS if that is set"
    ]
