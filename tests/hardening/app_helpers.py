"""Helpers of the application-layer hardening tests (SockJS, Kontrol, built-ins).

Plain HTTP requests, the resident memory of any
process, and a Kontrol process with its limits set through ``KONTROL_*`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import kite_auth_token
from kite_kontrol.testing import KontrolProcess

from kitecore.http.client import HTTPClient

__all__ = ["KONTROL_SECRET", "http_request", "kontrol_process", "process_rss"]

KONTROL_SECRET = "hardening-registration-secret"
#: Where kite_auth_token is imported from, for the Kontrol subprocess.
_PLUGIN_SRC = str(Path(kite_auth_token.__file__).resolve().parents[1])


def process_rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


async def http_request(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: Mapping[str, str] = {},
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """One HTTP/1.1 request to 127.0.0.1:``port`` on a fresh connection; (status, body)."""
    async with HTTPClient(timeout=timeout) as client:
        result = await client.request(
            method, f"http://127.0.0.1:{port}{target}", headers=headers.items(), body=body
        )
    return result.status, result.body


def kontrol_process(
    work_dir: Path, port: int, *, limits: Mapping[str, str] = {}, backend: str = "asyncio"
) -> KontrolProcess:
    """A Kontrol process on memory storage (registration secret :data:`KONTROL_SECRET`);
    ``limits`` are ``KONTROL_*`` variables such as ``KONTROL_MAX_KITES_PER_USER``."""
    env = {"PYTHONPATH": os.pathsep.join([_PLUGIN_SRC, os.environ.get("PYTHONPATH", "")])}
    env.update(limits)
    return KontrolProcess(
        work_dir,
        port=port,
        username="admin",
        registration_secret=KONTROL_SECRET,
        backend=backend,
        env=env,
        plugins="websocket,memory",
    )
