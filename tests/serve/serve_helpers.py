"""Helpers for the serving tests: plain HTTP over a real socket, a kite in a process."""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.abc import ByteStream

#: A kite in a process of its own: ``python script MODE PORT [KONTROL_URL]``.
#: ``run``: ``kite.run()`` as is. ``register``: registers with Kontrol, says ``ready ID``, and
#: on a signal does what ``kite.run()`` does (``wait_for_signal_then(kite.shutdown)``).
KITE_SCRIPT = """
import sys

import anyio

from kitecore import Kite
from kitecore.kite import wait_for_signal_then

mode, port = sys.argv[1], int(sys.argv[2])
kite = Kite("slow", "1.0.0")
kite.config.ip = "127.0.0.1"
kite.config.port = port


@kite.handle("slow", auth=False)
async def slow(r):
    seconds = r.args.one(float)
    if seconds:
        print("started", flush=True)
    await anyio.sleep(seconds)
    return "done"


async def register_and_serve():
    async with kite:
        await kite.register_forever(kite.url)
        await kite.kontrol_client.registered.wait()
        print("ready", kite.id, kite.config.environment, flush=True)
        await wait_for_signal_then(kite.shutdown)


if mode == "run":
    kite.run()
else:
    anyio.run(register_and_serve)
"""


async def http_get(stream: ByteStream, path: str) -> tuple[int, dict[str, Any]]:
    """Send ``GET path`` on a keep-alive connection; the status and the JSON body."""
    await stream.send(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(body) < length:
        body += await stream.receive()
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


async def wait_healthy(port: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``GET /kite/health`` on 127.0.0.1:``port`` until it answers 200; the body."""
    with anyio.fail_after(timeout):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            async with stream:
                status, body = await http_get(stream, "/kite/health")
            if status == 200:
                return body
