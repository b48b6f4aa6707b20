"""``kite demo`` with Kontrol (through the ``kite_demo`` hook), on free loopback ports.

Kontrol starts on the embedded memory storage, the first kite gets a kite.key
(``registerMachine``), serves ``square`` and registers; the second kite gets its own kite.key,
finds the first with ``get_kites`` and calls ``square(n)`` with a Kontrol-issued token, then
``kite.ping``.
"""

from __future__ import annotations

import tempfile
from typing import Any, TextIO

from kitecore.cli.demo import demo_config, square
from kitecore.discovery.machine import register_machine
from kitecore.kite import Kite

from .machine import OpenPolicy
from .server import Kontrol

__all__ = ["run_with_kontrol"]


async def run_with_kontrol(number: float, out: TextIO) -> tuple[Any, Any]:
    """The whole walk-through; returns the results of ``square(number)`` and ``kite.ping``."""
    with tempfile.TemporaryDirectory(prefix="kite-demo-") as data_dir:
        kontrol = Kontrol(
            storage="memory://",
            data_dir=data_dir,
            config=demo_config(username="kontrol"),
            machine_policy=OpenPolicy(),  # demo only: anyone may get a kite.key
        )
        async with kontrol:
            print(f"Kontrol serving on {kontrol.url} (memory storage)", file=out)

            async def kite_with_key(name: str, username: str) -> Kite:
                config = demo_config(username=username)
                key = await register_machine(
                    Kite("cli", "0.1.0", config=config), kontrol.url, username=username
                )
                config.apply_kite_key(key)
                return Kite(name, "1.0.0", config=config)

            first = await kite_with_key("first", "alice")
            first.handle("square", square)  # authentication required (the default)
            async with first:
                result = await first.register(first.url)
                print(f"first kite {first.identity.path} registered at {result.url}", file=out)
                second = await kite_with_key("second", "bob")
                async with second.kontrol_client:
                    clients = await second.get_kites(
                        username="alice", environment="demo", name="first"
                    )
                    print(f"second kite found {len(clients)} kite(s): {clients[0].url}", file=out)
                    async with clients[0] as client:
                        return await client.tell("square", number), await client.tell("kite.ping")
