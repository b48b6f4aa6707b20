"""Small clients for the SockJS I/O tests: raw sockets and frame readers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from kitecore.http.client import HTTPClient, HTTPResult


async def post(http: HTTPClient, url: str, body: bytes = b"", **headers: str) -> HTTPResult:
    """POST with headers given as keywords (``content_type="text/plain"``)."""
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return await http.request("POST", url, headers=pairs, body=body, timeout=10)


async def get(http: HTTPClient, url: str, **headers: str) -> HTTPResult:
    """GET with headers given as keywords."""
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return await http.request("GET", url, headers=pairs, timeout=10)


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true (state owned by the server, with no event to await)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.02)


def has_receiver(service: Any, session_id: str) -> bool:
    """Whether a poll (or stream) of session ``session_id`` is attached on ``service`` now."""
    session = service._table.get(session_id)
    return session is not None and session.receiver is not None


async def receiver_attached(service: Any, session_id: str, attached: bool = True) -> None:
    """Wait until a request of session ``session_id`` holds it (or, ``attached=False``, until
    none does): the server's side of "the poll is in flight"."""
    await eventually(lambda: has_receiver(service, session_id) == attached)


async def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh TCP connection and read until the server closes it (or
    ``timeout``); returns everything read."""
    chunks: list[bytes] = []
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        with anyio.move_on_after(timeout):
            while True:
                try:
                    chunks.append(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    return b"".join(chunks)


class App:
    """The conformance app serving on a free port: ``url(path)`` and the services by prefix."""

    def __init__(self, port: int, services: dict[str, Any]) -> None:
        self.port = port
        self.services = services

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve_app(**delays: float) -> AsyncIterator[App]:
    """Serve the conformance app with the given heartbeat/disconnect delays."""
    from kite_transport_sockjs.conformance import build_server

    server, services = build_server(**delays)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        try:
            yield App(port, dict(services))
        finally:
            tg.cancel_scope.cancel()
