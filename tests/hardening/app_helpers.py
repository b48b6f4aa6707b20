"""Helpers of the application-layer hardening tests (SockJS, Kontrol, built-ins).

Plain HTTP requests over a raw socket (h11 parses the answer), the resident memory of any
process, and a Kontrol process with its limits set through ``KONTROL_*`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import h11
import kite_auth_token

from kitecore.kontrol.testing import KontrolProcess

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
    """One HTTP/1.1 request to 127.0.0.1:``port``; returns (status, body)."""
    conn = h11.Connection(h11.CLIENT)
    fields = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    fields += [("Content-Length", str(len(body)))] if method == "POST" else []
    fields += list(headers.items())
    data = conn.send(h11.Request(method=method, target=target, headers=fields))
    data += conn.send(h11.Data(data=body)) if body else b""
    data += conn.send(h11.EndOfMessage())
    status = 0
    chunks: list[bytes] = []
    with anyio.fail_after(timeout):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        conn.receive_data(b"")
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, b"".join(chunks)


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
