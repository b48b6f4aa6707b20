"""Helpers for the transport-choice tests: kites with a chosen set of transports, and a TCP
relay that counts the connections a client opens (each dial attempt opens at least one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins

#: What ``KITE_PLUGINS`` would name for each side of the matrix.
RAW_ONLY = ("websocket",)
WITH_SOCKJS = ("websocket", "sockjs")
SOCKJS_ONLY = ("sockjs",)


def plugins(names: tuple[str, ...]) -> PluginRegistry:
    """A registry with exactly the transports ``names`` (strict: all must be installed)."""
    return load_plugins(names=names, strict=True)


async def square(r: Any) -> float:
    return r.args.one(float) ** 2


@asynccontextmanager
async def serving(
    config: Config, names: tuple[str, ...], *, port: int = 0, name: str = "math"
) -> AsyncIterator[Kite]:
    """A kite serving ``square`` with the transports ``names`` (on ``port``, or a free one)."""
    config = config.copy()
    config.port = port
    kite = Kite(name, "1.0.0", config=config, plugins=plugins(names))
    kite.handle("square", square)
    async with kite:
        yield kite


class ConnectionCounter:
    """A TCP relay on a free loopback port to ``target_port``; :attr:`count` is the number of
    connections accepted so far."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.count = 0
        self.port = 0

    def url(self, path: str = "/kite") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        self.count += 1
        async with client:
            try:
                server = await anyio.connect_tcp("127.0.0.1", self.target_port)
            except OSError:
                return
            async with server, anyio.create_task_group() as group:

                async def pipe(source: Any, sink: Any) -> None:
                    try:
                        async for chunk in source:
                            await sink.send(chunk)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(pipe, client, server)
                group.start_soon(pipe, server, client)


@asynccontextmanager
async def counting_relay(target_port: int) -> AsyncIterator[ConnectionCounter]:
    """Run a :class:`ConnectionCounter` to ``target_port`` for the block."""
    counter = ConnectionCounter(target_port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    counter.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, counter._relay)
        try:
            yield counter
        finally:
            group.cancel_scope.cancel()
