"""``kite tell --query`` and ``kite query`` reach kites behind both proxies, as users run them;
``kite proxy`` and ``kite tunnelproxy`` take Go's options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from kite_proxy import TunnelProxy
from proxy_helpers import Farm
from tls_certs import TLSFiles

from kitecore import Config, Kite
from kitecore.testing import free_port

KITE = [sys.executable, "-m", "kitecore.cli"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tunnel_kite.py"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_cli(home: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket,sockjs,token,proxy"}
    with anyio.fail_after(60):
        done = await anyio.run_process([*KITE, *args], env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_tell_with_a_query_goes_through_both_proxies(farm: Farm, tmp_path: Path) -> None:
    await farm.tunnel_proxy()
    await farm.reverse_proxy()
    hidden = farm.kite("hidden")
    tunnel_url, _ = await farm.behind_tunnel(hidden)
    private = farm.kite("private", ip="127.0.0.2")
    proxied_url, _ = await farm.behind_proxy(private)
    home = tmp_path / "alice-home"
    home.mkdir()
    (home / "kite.key").write_text(farm.kontrol.create_kite_key("alice"))
    code, out, err = await run_cli(home, "query", "--username", "alice", "--name", "hidden")
    assert code == 0 and tunnel_url in out, err
    for name, number in (("hidden", "4"), ("private", "5")):
        code, out, err = await run_cli(
            home, "tell", "--query", f"alice/proxytest/{name}", "square", number
        )
        assert (code, out.strip()) == (0, str(int(number) ** 2)), err
    code, out, err = await run_cli(home, "query", "--username", "alice", "--name", "private")
    assert code == 0 and proxied_url in out, err


@pytest.mark.parametrize("command", ["proxy", "tunnelproxy"])
async def test_proxy_commands_take_gos_options(command: str, tmp_path: Path) -> None:
    code, out, err = await run_cli(tmp_path, command, "--help")
    assert code == 0, err
    for option in ("--ip", "--port", "--public-host", "--public-port", "--region", "--environment"):
        assert option in out
    for option in ("--scheme", "--tls-cert", "--tls-key", "--tls-client-ca"):
        assert option in out
    if command == "tunnelproxy":
        assert "--private-key" in out and "--public-key" in out


async def test_the_readme_example_kite_is_called_through_the_tunnel(
    farm: Farm, tmp_path: Path
) -> None:
    """README "Reaching kites behind NAT": examples/tunnel_kite.py, then kite tell --query."""
    config = farm.config(farm.kontrol.username)
    config.environment = "production"
    await farm.serve_proxy(TunnelProxy(config, plugins=farm.plugins))
    home = tmp_path / "alice-home"
    home.mkdir()
    (home / "kite.key").write_text(farm.kontrol.create_kite_key("alice"))
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": "websocket,sockjs,token,proxy"}
    async with await anyio.open_process([sys.executable, str(EXAMPLE)], env=env) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                line = (await process.stdout.receive()).decode()
            assert "/alice/production/hidden/1.0.0/" in line and "reachable at http://" in line
            code, out, err = await run_cli(
                home, "tell", "--query", "alice/production/hidden", "square", "4"
            )
            assert (code, out.strip()) == (0, "16"), err
        finally:
            process.terminate()


@pytest.mark.parametrize(("command", "scheme"), [("proxy", "https"), ("tunnelproxy", "wss")])
async def test_proxy_commands_serve_tls(
    command: str, scheme: str, tls_files: TLSFiles, tmp_path: Path
) -> None:
    """``--tls-cert``/``--tls-key``: the proxy serves TLS and says so."""
    port = free_port()
    env = {
        **os.environ,
        "KITE_HOME": str(tmp_path),
        "KITE_PLUGINS": "websocket,sockjs,token,proxy",
        "KITE_TLS_CA_FILE": tls_files.ca_file,
    }
    args = [
        *KITE,
        command,
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-register",
        "--tls-cert",
        tls_files.server_cert,
        "--tls-key",
        tls_files.server_key,
    ]
    async with await anyio.open_process(args, env=env) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                line = (await process.stdout.receive()).decode()
            assert f"serving on {scheme}://127.0.0.1:{port}/kite" in line, line
            config = Config()
            config.tls_ca_file = tls_files.ca_file
            caller = Kite("caller", "1.0.0", config=config)
            async with caller.new_client(f"wss://127.0.0.1:{port}/kite") as client:
                assert await client.tell("kite.ping") == "pong"
        finally:
            process.terminate()
