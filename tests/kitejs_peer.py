"""The Python kite that tests/interop/kitejs_client.js calls: one definition for every test that
runs that script (plain, over TLS, under an ASGI server)."""

from __future__ import annotations

from typing import Any

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry


def make_kitejs_peer(config: Config, plugins: PluginRegistry) -> Kite:
    """A kite ``pymath`` 1.0.0 with the methods kitejs_client.js calls: ``square``,
    ``countdown`` (n callbacks, then "done"), ``fail`` (raises its text) and ``length``."""
    kite = Kite("pymath", "1.0.0", config=config, plugins=plugins)

    @kite.handle("square")
    async def square(r: Any) -> float:
        a = r.args.one(float)
        return a * a

    @kite.handle("countdown")
    async def countdown(r: Any) -> str:
        n, callback = r.args.integer(0), r.args.function(1)
        for i in range(n, 0, -1):
            await callback(i)
        return "done"

    @kite.handle("fail")
    async def fail(r: Any) -> None:
        raise ValueError(r.args.string(0))

    @kite.handle("length")
    async def length(r: Any) -> int:
        return len(r.args.string(0))

    return kite
