"""Run an ASGI app in the real servers, in-process, on a free loopback port.

uvicorn runs on asyncio only; hypercorn on asyncio and trio. The listening socket is bound
before the server starts, so a client may connect at once (the kernel queues it until the
server accepts).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio

#: (server, anyio backend) pairs every ASGI test runs on.
SETUPS = [("uvicorn", "asyncio"), ("hypercorn", "asyncio"), ("hypercorn", "trio")]


def listening_socket() -> socket.socket:
    """A TCP socket listening on a free loopback port (for :func:`serve_asgi`'s ``sock``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    server: str,
    *,
    lifespan: bool = True,
    sock: socket.socket | None = None,
    root_path: str = "",
) -> AsyncIterator[int]:
    """Serve ``app`` with ``server`` (``uvicorn`` or ``hypercorn``) while the block runs, on
    ``sock`` (default: a new one); yields the port. Leaving the block shuts the server down
    (lifespan shutdown included). ``root_path`` is the server's (a prefix a proxy strips)."""
    started = anyio.Event()
    if lifespan:
        app = _on_startup(app, started)
    else:
        app = _without_lifespan(app)
        started.set()
    with contextlib.closing(sock or listening_socket()) as sock:
        port = sock.getsockname()[1]
        async with anyio.create_task_group() as group:
            if server == "uvicorn":
                import uvicorn

                class Server(uvicorn.Server):
                    @contextlib.contextmanager
                    def capture_signals(self) -> Iterator[None]:  # the test owns signals
                        yield

                config = uvicorn.Config(
                    app,
                    lifespan="on" if lifespan else "off",
                    log_level="warning",
                    root_path=root_path,
                )
                uv = Server(config)
                group.start_soon(uv.serve, [sock])
                await started.wait()
                try:
                    yield port
                finally:
                    uv.should_exit = True
            else:
                from hypercorn.config import Config

                config = Config()
                # hypercorn takes the descriptor over (and closes it): give it a copy
                config.bind = [f"fd://{os.dup(sock.fileno())}"]
                config.loglevel = "WARNING"
                config.root_path = root_path
                config.graceful_timeout = 5
                stop = anyio.Event()
                if _on_trio():
                    from hypercorn.trio import serve as trio_serve

                    await group.start(
                        lambda task_status: trio_serve(
                            app, config, shutdown_trigger=stop.wait, task_status=task_status
                        )
                    )
                    await started.wait()
                else:
                    from hypercorn.asyncio import serve as asyncio_serve

                    async def run() -> None:
                        await asyncio_serve(app, config, shutdown_trigger=stop.wait)

                    group.start_soon(run)
                await started.wait()
                try:
                    yield port
                finally:
                    stop.set()


def _without_lifespan(app: Any) -> Any:
    """``app`` refusing the lifespan scope (hypercorn then goes on without; uvicorn is told
    ``lifespan="off"`` and never asks)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan is off in this test")
        await app(scope, receive, send)

    return wrapped


def _on_startup(app: Any, started: anyio.Event) -> Any:
    """``app`` that sets ``started`` once it reported lifespan startup complete."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def watching_send(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await app(scope, receive, watching_send if scope["type"] == "lifespan" else send)

    return wrapped


def _on_trio() -> bool:
    import sniffio

    return sniffio.current_async_library() == "trio"
