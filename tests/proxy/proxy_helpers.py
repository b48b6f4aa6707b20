"""Helpers of the proxy tests: start proxies and kites as tasks, stop them one by one."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.abc
from kite_kontrol.server import Kontrol
from kite_proxy import ReverseProxy, TunnelProxy, register_to_proxy, register_to_tunnel

from kitecore import Config, Kite
from kitecore.backoff import Backoff
from kitecore.plugins import PluginRegistry

#: Quick retries, so fault tests finish fast.
FAST = {"initial": 0.05, "maximum": 0.5}


async def square(r: Any) -> float:
    value = r.args.one(float)
    return value * value


async def length(r: Any) -> int:
    return len(r.args.one(str))


async def big(r: Any) -> str:
    return "y" * int(r.args.one(float))


class Farm:
    """Starts things as tasks of one group; each can be stopped alone (``stop``)."""

    def __init__(
        self, kontrol: Kontrol, config: Config, plugins: PluginRegistry, group: anyio.abc.TaskGroup
    ) -> None:
        self.kontrol = kontrol
        self.base_config = config
        self.plugins = plugins
        self.group = group

    def config(self, username: str = "alice", *, auth: bool = True) -> Config:
        config = self.base_config.copy()
        config.apply_kite_key(self.kontrol.create_kite_key(username))
        config.environment = "proxytest"
        config.disable_authentication = not auth
        config.timeout = 5.0
        return config

    async def start(
        self, make: Callable[[], AbstractAsyncContextManager[Any]]
    ) -> tuple[Any, anyio.CancelScope]:
        """Enter ``make()`` in a task; returns (its value, the scope that stops it)."""
        scope = anyio.CancelScope()

        async def run(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            with scope:
                async with make() as value:
                    task_status.started(value)
                    await anyio.sleep_forever()

        return await self.group.start(run), scope

    async def run(self, func: Any, *args: Any) -> tuple[Any, anyio.CancelScope]:
        """``await group.start(func, *args)`` in a scope of its own."""
        scope = anyio.CancelScope()

        async def run(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            with scope:
                await func(*args, task_status=task_status)

        return await self.group.start(run), scope

    async def tunnel_proxy(
        self, port: int = 0, max_message_size: int = 0, **options: Any
    ) -> tuple[TunnelProxy, Any]:
        config = self.config(self.kontrol.username)
        config.port = port
        config.max_message_size = max_message_size or config.max_message_size
        proxy = TunnelProxy(config, plugins=self.plugins, **options)
        return await self.serve_proxy(proxy)

    async def reverse_proxy(self, port: int = 0, **options: Any) -> tuple[ReverseProxy, Any]:
        config = self.config(self.kontrol.username)
        config.port = port
        proxy = ReverseProxy(config, plugins=self.plugins, **options)
        return await self.serve_proxy(proxy)

    async def serve_proxy(self, proxy: Any) -> tuple[Any, Any]:
        async def run(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            async with proxy:
                await proxy.kite.register_forever(proxy.url)
                await proxy.kite.kontrol_client.registered.wait()
                task_status.started(proxy)
                await anyio.sleep_forever()

        return await self.run(run)

    def kite(self, name: str = "square", **config_options: Any) -> Kite:
        config = self.config()
        for key, value in config_options.items():
            setattr(config, key, value)
        kite = Kite(name, "1.0.0", config=config, plugins=self.plugins)
        kite.handle("square", square)
        kite.handle("length", length)
        kite.handle("big", big)
        return kite

    async def behind_tunnel(self, kite: Kite) -> tuple[str, anyio.CancelScope]:
        """Register ``kite`` (not listening) through a tunnel proxy; returns its public URL."""

        async def go(*, task_status: anyio.abc.TaskStatus[str]) -> None:
            await register_to_tunnel(kite, backoff=Backoff(**FAST), task_status=task_status)

        return await self.run(go)

    async def behind_proxy(self, kite: Kite) -> tuple[str, anyio.CancelScope]:
        """Serve ``kite`` and register it through a reverse proxy; returns its public URL."""
        await self.start(lambda: kite)

        async def go(*, task_status: anyio.abc.TaskStatus[str]) -> None:
            await register_to_proxy(kite, backoff=Backoff(**FAST), task_status=task_status)

        return await self.run(go)

    async def caller(self, username: str = "alice") -> Kite:
        kite = Kite("caller", "1.0.0", config=self.config(username), plugins=self.plugins)
        value, _ = await self.start(lambda: kite)
        return value
