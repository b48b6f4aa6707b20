"""Helpers of the application-layer hardening tests (SockJS, Kontrol, built-ins).

Plain HTTP requests, the resident memory of any
process, and a Kontrol process with its limits set through ``KONTROL_*`` variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kite_kontrol.testing import KontrolProcess

from kitecore.http.client import HTTPClient

__all__ = ["KONTROL_SECRET", "http_request", "kontrol_process"]

KONTROL_SECRET = "hardening-registration-secret"


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
    env = dict(limits)
    return KontrolProcess(
        work_dir,
        port=port,
        username="admin",
        registration_secret=KONTROL_SECRET,
        backend=backend,
        env=env,
        plugins="websocket,memory",
    )
