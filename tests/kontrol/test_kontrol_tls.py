"""Kontrol over TLS: ``kite kontrol --tls-cert --tls-key`` serves https and writes https
Kontrol URLs into kite.keys, ``kite register`` reaches it with the CA trusted
(``KITE_TLS_CA_FILE``), and TLS kites register their https URLs and are found and called."""

from __future__ import annotations

import pytest
from cli_helpers import kite_kontrol, run_cli
from kite_kontrol.testing import MakeKontrol
from tls_certs import TLSFiles

from kitecore import Config, Kite
from kitecore.discovery.claims import unverified_claims
from kitecore.plugins import PluginRegistry
from kitecore.testing import free_port, square

pytestmark = pytest.mark.anyio


def with_tls(config: Config, tls: TLSFiles, *, serve: bool) -> Config:
    config = config.copy()
    config.tls_ca_file = tls.ca_file
    if serve:
        config.tls_cert_file, config.tls_key_file = tls.server_cert, tls.server_key
    return config


async def test_tls_kites_register_with_a_tls_kontrol_and_are_called(
    make_kontrol: MakeKontrol,
    kite_config: Config,
    token_plugins: PluginRegistry,
    tls_files: TLSFiles,
) -> None:
    base = kite_config.copy()
    base.disable_authentication = False
    kontrol = await make_kontrol(config=with_tls(base, tls_files, serve=True))
    assert kontrol.url.startswith("https://127.0.0.1:")
    alice_key = kontrol.create_kite_key("alice")
    assert unverified_claims(alice_key)["kontrolURL"] == kontrol.url

    config = with_tls(base, tls_files, serve=True)
    config.apply_kite_key(alice_key)
    math = Kite("math", "1.0.0", config=config, plugins=token_plugins)
    math.handle("square", square)
    caller_config = with_tls(base, tls_files, serve=False)
    caller_config.apply_kite_key(kontrol.create_kite_key("bob"))
    caller = Kite("caller", "1.0.0", config=caller_config, plugins=token_plugins)
    async with math, caller.kontrol_client:
        assert math.url.startswith("https://")
        await math.register_forever()
        await math.kontrol_client.registered.wait()
        (found,) = await caller.get_kites(name="math")
        assert found.url == math.url  # the https URL was advertised
        async with found:
            assert await found.tell("square", 9) == 81


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_kite_kontrol_tls_options_and_kite_register(tmp_path, tls_files: TLSFiles) -> None:
    admin_home, alice_home, data = tmp_path / "admin", tmp_path / "alice", tmp_path / "data"
    port = free_port()
    tls = ("--tls-cert", tls_files.server_cert, "--tls-key", tls_files.server_key)
    initial = await run_cli(
        admin_home, "kontrol", "--initial", "--username", "admin", "--data-dir", str(data),
        "--port", str(port), *tls,
    )  # fmt: skip
    assert initial.returncode == 0, initial.stderr
    kontrol_url = f"https://127.0.0.1:{port}/kite"
    assert unverified_claims((admin_home / "kite.key").read_text())["kontrolURL"] == kontrol_url

    async with kite_kontrol(
        admin_home, port, "--data-dir", str(data), "--open-registration", *tls
    ) as url:
        assert url == kontrol_url
        untrusting = await run_cli(alice_home, "register", "--to", url, "--username", "alice")
        assert untrusting.returncode == 1
        assert "certificate was refused" in untrusting.stderr.decode()
        assert "Traceback" not in untrusting.stderr.decode()

        ca = {"KITE_TLS_CA_FILE": tls_files.ca_file}
        done = await run_cli(alice_home, "register", "--to", url, "--username", "alice", env=ca)
        assert done.returncode == 0, done.stderr
        claims = unverified_claims((alice_home / "kite.key").read_text())
        assert claims["sub"] == "alice"
        assert claims["kontrolURL"] == kontrol_url

    bad = await run_cli(
        admin_home, "kontrol", "--data-dir", str(data), "--port", str(free_port()),
        "--tls-cert", tls_files.server_cert,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "KITE_TLS_KEY_FILE" in bad.stderr.decode()
