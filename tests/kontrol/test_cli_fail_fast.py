"""``kite query`` and ``kite tell --query`` fail fast and say why (issue 9, items 3 and 6).

The commands run as a user runs them, in a process of their own, against a real Kontrol.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

KITE = [sys.executable, "-m", "kitecore.cli"]

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


@pytest.fixture
def home(tmp_path: Path, kontrol) -> Path:
    """A KITE_HOME holding a kite.key of alice issued by ``kontrol``."""
    home = tmp_path / "alice-home"
    home.mkdir()
    (home / "kite.key").write_text(kontrol.create_kite_key("alice"))
    return home


async def run_cli(home: Path, *args: str, **env: str):
    full_env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket", **env}
    with anyio.fail_after(60):
        return await anyio.run_process([*KITE, *args], env=full_env, check=False)


def one_line(done) -> str:
    assert "Traceback" not in done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, done.stderr.decode()
    return lines[0]


@pytest.fixture
def closed_url() -> str:
    """A Kontrol URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/kite"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A Kontrol URL whose listener accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"http://127.0.0.1:{s.getsockname()[1]}/kite"


async def test_query_with_no_match_says_so_in_one_line(home, kontrol):
    done = await run_cli(home, "query", "--username", "alice", "--name", "nothing")
    assert done.returncode == 0
    assert done.stdout == b""
    assert one_line(done) == f"no kites match username=alice name=nothing at {kontrol.url}"
    done = await run_cli(home, "query", "--name", "nothing", "--json")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, b"[]", b"")


async def test_refused_kontrol_is_reported_at_once(home, closed_url):
    done = await run_cli(home, "query", "--name", "math", "--kontrol-url", closed_url)
    assert done.returncode == 1
    assert one_line(done) == (
        f"kite query: can't connect to Kontrol at {closed_url}: connection refused "
        "(is Kontrol running there?)"
    )
    done = await run_cli(
        home, "tell", "--query", "alice/production/math", "square", "4", KITE_KONTROL_URL=closed_url
    )
    assert done.returncode == 1
    assert one_line(done).startswith(f"kite tell: can't connect to Kontrol at {closed_url}: ")


async def test_timeout_bounds_a_silent_kontrol(home, silent_url):
    done = await run_cli(home, "query", "--timeout", "1", "--kontrol-url", silent_url)
    assert done.returncode == 1
    assert one_line(done) == f"kite query: Kontrol at {silent_url} did not answer in 1s"
    done = await run_cli(
        home, "tell", "--timeout", "1", "--query", "alice/production/math", "square", "4",
        KITE_KONTROL_URL=silent_url,
    )  # fmt: skip
    assert done.returncode == 1
    assert one_line(done) == (
        f"kite tell: timed out after 1s asking Kontrol at {silent_url} for alice/production/math"
    )


async def test_kontrol_on_a_busy_port_says_which_address(tmp_path, silent_url):
    port = silent_url.split(":")[2].split("/")[0]
    done = await run_cli(
        tmp_path / "kontrol-home", "kontrol", "--ip", "127.0.0.1", "--port", port,
        "--data-dir", str(tmp_path / "data"), "--registration-secret", "S",
        KITE_PLUGINS="websocket,token,memory,kontrol",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in one_line(done)
