"""Bad input over TLS, against a kite in a process of its own: a handshake that never ends,
plain HTTP to the TLS port, a client certificate from an untrusted CA; and in process: TLS
to a plain port, an expired and a wrong-host certificate. Each gets a clear error, and the
kite serves a normal ``square`` call afterwards."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from tls_certs import TLSFiles, make_tls_files

from kitecore.client import DialError
from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry
from kitecore.testing import MakeKite, ServerProcess, free_port, square

pytestmark = pytest.mark.anyio

#: A kite serving ``square`` configured by KITE_* variables only; prints ``serving on URL``.
KITE_SCRIPT = """
import anyio
from kitecore import Kite
from kitecore.kite import wait_for_signal_then

kite = Kite("tlskite", "1.0.0")

@kite.handle("square", auth=False)
async def square(r):
    return r.args.one(float) ** 2

async def main():
    async with kite:
        print("serving on", kite.url, flush=True)
        await wait_for_signal_then(kite.shutdown)

anyio.run(main)
"""


class KiteProcess(ServerProcess):
    name = "TLS kite"

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        super().__init__(directory / "kite.log", env)
        self.script = directory / "tls_kite.py"
        self.script.write_text(KITE_SCRIPT)

    def command(self) -> list[str]:
        return [sys.executable, str(self.script)]


@pytest.fixture
async def tls_kite(tls_files: TLSFiles, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """A kite process serving TLS that requires client certificates of the test CA, with a
    1-second handshake timeout; (its URL, its port)."""
    port = free_port()
    env = {
        **os.environ,
        "KITE_HOME": str(tmp_path / "home"),
        "KITE_PLUGINS": "websocket",
        "KITE_IP": "127.0.0.1",
        "KITE_PORT": str(port),
        "KITE_HANDSHAKE_TIMEOUT": "1",
        "KITE_TLS_CERT_FILE": tls_files.server_cert,
        "KITE_TLS_KEY_FILE": tls_files.server_key,
        "KITE_TLS_CLIENT_CA_FILE": tls_files.ca_file,
    }
    process = KiteProcess(tmp_path, env)
    try:
        line = await process.start_process()
        url = line.split("serving on ", 1)[1].strip()
        yield url, port
    finally:
        await process.stop()


def client_config(tmp_path: Path, tls: TLSFiles | None = None) -> Config:
    config = Config()
    config.timeout = 10.0
    config.handshake_timeout = 10.0
    if tls is not None:
        config.tls_ca_file = tls.ca_file
        config.tls_client_cert_file = tls.client_cert
        config.tls_client_key_file = tls.client_key
    return config


async def call_square(url: str, config: Config, plugins: PluginRegistry, n: float) -> Any:
    async with Kite("caller", "1.0.0", config=config, plugins=plugins).new_client(url) as client:
        return await client.tell("square", n)


async def test_stalled_handshakes_are_dropped_and_others_served(
    tls_kite: tuple[str, int], tls_files: TLSFiles, kite_plugins: PluginRegistry, tmp_path: Path
) -> None:
    url, port = tls_kite
    config = client_config(tmp_path, tls_files)
    silent = await anyio.connect_tcp("127.0.0.1", port)  # says nothing at all
    partial = await anyio.connect_tcp("127.0.0.1", port)
    await partial.send(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, no more
    try:
        # while both hang in their handshakes, other callers are served
        assert await call_square(url, config, kite_plugins, 3) == 9
        # the kite gives up on them after its handshake timeout (1 s) and closes them; the
        # guard here only keeps a broken build from hanging the test run
        with anyio.fail_after(30):
            for stream in (silent, partial):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    while True:
                        await stream.receive()
    finally:
        await silent.aclose()
        await partial.aclose()
    assert await call_square(url, config, kite_plugins, 4) == 16


async def test_plain_http_to_the_tls_port(
    tls_kite: tuple[str, int], tls_files: TLSFiles, kite_plugins: PluginRegistry, tmp_path: Path
) -> None:
    url, port = tls_kite
    plain_url = url.replace("https://", "http://")
    with pytest.raises(DialError) as caught:
        await call_square(plain_url, client_config(tmp_path, tls_files), kite_plugins, 2)
    assert "closed the connection without answering" in str(caught.value)
    assert "dial https://" in str(caught.value)
    # a raw plain-HTTP request: the connection is closed, no plain answer
    async with await anyio.connect_tcp("127.0.0.1", port) as raw:
        await raw.send(b"GET /kite/health HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(30):
            received = b""
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    received += await raw.receive()
        assert not received.startswith(b"HTTP/1.1 200")
    assert await call_square(url, client_config(tmp_path, tls_files), kite_plugins, 5) == 25


async def test_client_certificate_from_an_untrusted_ca(
    tls_kite: tuple[str, int], tls_files: TLSFiles, kite_plugins: PluginRegistry, tmp_path: Path
) -> None:
    url, _ = tls_kite
    stranger = make_tls_files(tmp_path / "stranger")
    config = client_config(tmp_path, tls_files)
    config.tls_client_cert_file = stranger.client_cert
    config.tls_client_key_file = stranger.client_key
    with pytest.raises(DialError) as caught:
        await call_square(url, config, kite_plugins, 2)
    assert "requires client certificates" in str(caught.value)
    none = client_config(tmp_path, tls_files)
    none.tls_client_cert_file = none.tls_client_key_file = ""
    with pytest.raises(DialError):
        await call_square(url, none, kite_plugins, 2)
    assert await call_square(url, client_config(tmp_path, tls_files), kite_plugins, 6) == 36


async def test_tls_to_a_plain_port(
    make_kite: MakeKite, kite_plugins: PluginRegistry, tmp_path: Path, tls_files: TLSFiles
) -> None:
    plain = await make_kite(methods={"square": square})
    assert plain.url.startswith("http://")
    tls_url = plain.url.replace("http://", "https://")
    with pytest.raises(DialError) as caught:
        await call_square(tls_url, client_config(tmp_path, tls_files), kite_plugins, 2)
    assert "does not speak TLS on that port" in str(caught.value)
    assert await call_square(plain.url, client_config(tmp_path), kite_plugins, 7) == 49


@pytest.mark.parametrize(
    ("hosts", "expired", "cause"),
    [
        (("127.0.0.1", "localhost"), True, "certificate has expired"),
        (("kite.example.com",), False, "IP address mismatch"),
    ],
    ids=["expired", "wrong-host"],
)
async def test_bad_server_certificates_are_named(
    make_kite: MakeKite,
    kite_config: Config,
    kite_plugins: PluginRegistry,
    tmp_path: Path,
    tls_files: TLSFiles,
    hosts: tuple[str, ...],
    expired: bool,
    cause: str,
) -> None:
    cert, key = tls_files.issue("bad", *hosts, expired=expired)
    config = kite_config.copy()
    config.tls_cert_file, config.tls_key_file = cert, key
    kite = await make_kite(methods={"square": square}, config=config)
    with pytest.raises(DialError) as caught:
        await call_square(kite.url, client_config(tmp_path, tls_files), kite_plugins, 2)
    assert "certificate was refused" in str(caught.value)
    assert cause in str(caught.value)
    # the kite serves on (a caller that opted out of verification gets its answer)
    insecure = client_config(tmp_path)
    insecure.tls_insecure = True
    assert await call_square(kite.url, insecure, kite_plugins, 8) == 64
