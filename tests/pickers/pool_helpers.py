"""Kites for the pool tests: each counts the calls it serves, may answer late, and can be
killed and brought back at the same address."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from kite_kontrol.server import Kontrol

from kitecore import Config, Kite, Query
from kitecore.plugins import PluginRegistry

OWNER = "bob"
QUERY = Query(username=OWNER, environment="production", name="math")


@dataclass
class FarmKite:
    """One kite of the farm and its lifetime."""

    kite: Kite
    delay: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stopped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def id(self) -> str:
        return self.kite.id


class KiteFarm:
    """Starts ``math`` kites of user bob registered to a Kontrol; counts calls by kite id."""

    def __init__(
        self, kontrol: Kontrol, config: Config, plugins: PluginRegistry, group: TaskGroup
    ) -> None:
        self.kontrol = kontrol
        self.config = config
        self.plugins = plugins
        self.group = group
        self.calls: Counter[str] = Counter()
        self.kites: list[FarmKite] = []

    async def start(
        self,
        *,
        delay: float = 0.0,
        name: str = "math",
        port: int = 0,
        kite_id: str | None = None,
        work: float = 0.0,
    ) -> FarmKite:
        """Start and register a kite; ``delay`` seconds are added to every call it serves
        (``kite.ping`` too), ``work`` seconds to ``square`` only."""
        config = self.config.copy()
        config.apply_kite_key(self.kontrol.create_kite_key(OWNER))
        config.environment = "production"
        config.disable_authentication = False
        config.port = port
        kite = Kite(name, "1.0.0", config=config, plugins=self.plugins)
        if kite_id is not None:
            kite.id = kite_id
        calls = self.calls

        async def square(r: Any) -> float:
            calls[kite.id] += 1
            if work:
                await anyio.sleep(work)
            n = r.args.one(float)
            return n * n

        async def hang(r: Any) -> None:
            calls[kite.id] += 1
            await anyio.sleep(3600)

        async def fail(r: Any) -> None:
            calls[kite.id] += 1
            raise ValueError("fails on purpose")

        kite.handle("square", square)
        kite.handle("hang", hang)
        kite.handle("fail", fail)
        if delay:

            @kite.pre_handle
            async def slow(r: Any) -> None:
                await anyio.sleep(delay)

        farm_kite = FarmKite(kite, delay)
        await self.group.start(self._run, farm_kite)
        self.kites.append(farm_kite)
        return farm_kite

    async def _run(self, farm_kite: FarmKite, *, task_status: Any) -> None:
        try:
            with farm_kite.scope:
                async with farm_kite.kite as kite:
                    await kite.register()
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            farm_kite.stopped.set()

    async def kill(self, farm_kite: FarmKite) -> None:
        """Stop the kite at once (its connections close, Kontrol soon forgets it)."""
        farm_kite.scope.cancel()
        with anyio.fail_after(5):
            await farm_kite.stopped.wait()
        self.kites.remove(farm_kite)

    async def revive(self, farm_kite: FarmKite) -> FarmKite:
        """Start the killed kite again: same id, same port, same delay."""
        return await self.start(
            delay=farm_kite.delay, port=farm_kite.kite.port, kite_id=farm_kite.id
        )


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until it is true; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while True:
            if predicate():
                return
            await anyio.sleep(0.005)
