"""examples/browser over https: headless Chromium opens the page and kite.js calls the kite
over SockJS on the same TLS port (websocket as ``wss://``, xhr-polling as ``https://``).

The test CA is not in Chromium's trust store and cannot be added to it headless without a
profile NSS database, so the browser gets the server certificate's public key pinned with
``--ignore-certificate-errors-spki-list``: it accepts that one key and still refuses any other
certificate error (a blanket ``--ignore-certificate-errors`` would hide exactly the failures a
TLS test is for). The second test shows that: a kite with another key fails in the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_example_page import EXPECTED, SERVE, first_line
from tls_certs import TLSFiles, make_tls_files

HERE = Path(__file__).resolve().parent
TRANSPORTS = ("websocket", "xhr-polling")


def spki_pin(cert_file: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the certificate in ``cert_file``."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def tls_page(
    node_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, TLSFiles]]:
    """The example kite serving its page over https: (page URL, its certificates)."""
    files = make_tls_files(tmp_path_factory.mktemp("page-certs"))
    home = tmp_path_factory.mktemp("kite-home")
    env = {
        **node_env,
        "KITE_HOME": str(home),
        "KITE_TLS_CERT_FILE": files.server_cert,
        "KITE_TLS_KEY_FILE": files.server_key,
    }
    command = [sys.executable, str(SERVE), "--port", "0"]
    with (
        (home / "serve.log").open("w") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, env=env, text=True
        ) as process,
    ):
        try:
            line = first_line(process, timeout=30)
            assert line.startswith("open https://"), (line, (home / "serve.log").read_text())
            yield line.split()[1], files
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def drive(page_url: str, chromium: str, env: dict[str, str], pin: str) -> dict[str, Any]:
    command = ["node", str(HERE / "drive_page.js"), page_url, chromium, *TRANSPORTS]
    done = subprocess.run(
        command, env={**env, "CHROMIUM_SPKI_PIN": pin}, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_page_over_https_with_the_key_pinned(
    tls_page: tuple[str, TLSFiles], node_env: dict[str, str], chromium: str
) -> None:
    page_url, files = tls_page
    shown = drive(page_url, chromium, node_env, spki_pin(files.server_cert))
    for transport in TRANSPORTS:
        assert shown[transport] == {**EXPECTED, "transport": transport}


def test_another_key_is_not_trusted(
    tls_page: tuple[str, TLSFiles], node_env: dict[str, str], chromium: str, tmp_path: Path
) -> None:
    page_url, _ = tls_page
    other = make_tls_files(tmp_path / "other")
    shown = drive(page_url, chromium, node_env, spki_pin(other.server_cert))
    for transport in TRANSPORTS:
        assert shown[transport]["status"] != "done"
        assert any("ERR_CERT" in error for error in shown[transport]["errors"]), shown[transport]
