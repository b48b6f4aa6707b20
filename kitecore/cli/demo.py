"""``kite demo``: the seed's walk-through, on free loopback ports, in one process.

With Kontrol (the default, when a plugin such as kite-kontrol implements the ``kite_demo``
hook): Kontrol starts, both kites get kite.keys, the second finds the first through Kontrol and
calls it with a Kontrol-issued token. Without one, or with ``--direct``: the first kite serves
``square``, the second dials the first's URL, no Kontrol.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable
from typing import Any, TextIO

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import get_registry
from kitecore.request import Request

__all__ = ["DEMO", "demo", "demo_config", "run_direct", "square"]

#: How to get the demo with Kontrol, printed when no plugin provides it.
KONTROL_HINT = "pip install ./plugins/kite-kontrol ./plugins/kite-auth-token"


async def square(r: Request) -> Any:
    """The first kite's method: ``square(n) = n * n``."""
    a = r.args.one(float)
    return a * a


def demo_config(**fields: Any) -> Config:
    """A config on 127.0.0.1, a free port, environment ``demo``, plus ``fields``."""
    config = Config(ip="127.0.0.1", port=0, environment="demo", region="local")
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def run_direct(number: float, out: TextIO) -> tuple[Any, Any]:
    """First kite serves square (no auth); the second dials its URL."""
    first = Kite("first", "1.0.0", config=demo_config(disable_authentication=True))
    first.handle("square", square)
    async with first:
        print(f"first kite {first.identity.path} serving on {first.url}", file=out)
        second = Kite("second", "1.0.0", config=demo_config())
        async with second.new_client(first.url) as client:
            return await client.tell("square", number), await client.tell("kite.ping")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--number", type=float, default=4, help="the number to square")
    parser.add_argument("--direct", action="store_true", help="without Kontrol")


def _with_kontrol(number: float, out: TextIO) -> Awaitable[tuple[Any, Any]] | None:
    """The walk-through of the plugin implementing ``kite_demo`` (kite-kontrol), if any."""
    return get_registry().pm.hook.kite_demo(number=number, out=out)  # type: ignore[no-any-return]


async def demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the walk-through; 0 when ``square`` and ``kite.ping`` answered as expected."""
    out = out or sys.stdout
    number = _plain(args.number)
    walk_through = None if args.direct else _with_kontrol(number, out)
    if walk_through is None:
        if not args.direct:
            print(
                f"Kontrol is not installed ({KONTROL_HINT}) or not in KITE_PLUGINS: "
                "running the direct demo, the second kite dials the first by URL",
                file=out,
            )
        result, pong = await run_direct(number, out)
    else:
        result, pong = await walk_through
    print(f"square({number}) = {_plain(result)}", file=out)
    print(f"kite.ping = {pong}", file=out)
    return 0 if result == number * number and pong == "pong" else 1


DEMO = (
    "run the first-kite/second-kite walk-through (with Kontrol when kite-kontrol is installed)",
    configure,
    demo,
)
