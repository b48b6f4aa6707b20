"""``kite demo``: the seed's walk-through, on free loopback ports, in one process.

With Kontrol (the default): Kontrol starts on the embedded memory storage, the first kite gets
a kite.key (``registerMachine``), serves ``square`` and registers; the second kite gets its own
kite.key, finds the first with ``get_kites`` and calls ``square(4)`` with a Kontrol-issued
token, then ``kite.ping``. ``--direct`` skips Kontrol: the second kite dials the first's URL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any, TextIO

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.request import Request


async def square(r: Request) -> Any:
    a = r.args.one(float)
    return a * a


def _config(**fields: Any) -> Config:
    config = Config(ip="127.0.0.1", port=0, environment="demo", region="local")
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def run_direct(number: float, out: TextIO) -> tuple[Any, Any]:
    """First kite serves square (no auth); the second dials its URL."""
    first = Kite("first", "1.0.0", config=_config(disable_authentication=True))
    first.handle("square", square)
    async with first:
        print(f"first kite {first.identity.path} serving on {first.url}", file=out)
        second = Kite("second", "1.0.0", config=_config())
        async with second.new_client(first.url) as client:
            return await client.tell("square", number), await client.tell("kite.ping")


async def run_with_kontrol(number: float, out: TextIO) -> tuple[Any, Any]:
    """The whole walk-through: Kontrol, registration, discovery, a token-authenticated call."""
    from kite_kontrol.machine import OpenPolicy
    from kite_kontrol.server import Kontrol

    from kitecore.discovery.machine import register_machine

    with tempfile.TemporaryDirectory(prefix="kite-demo-") as data_dir:
        kontrol = Kontrol(
            storage="memory://",
            data_dir=data_dir,
            config=_config(username="kontrol"),
            machine_policy=OpenPolicy(),  # demo only: anyone may get a kite.key
        )
        async with kontrol:
            print(f"Kontrol serving on {kontrol.url} (memory storage)", file=out)

            async def kite_with_key(name: str, username: str) -> Kite:
                config = _config(username=username)
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


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--number", type=float, default=4, help="the number to square")
    parser.add_argument("--direct", action="store_true", help="without Kontrol")


async def demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    number = _plain(args.number)
    if args.direct:
        result, pong = await run_direct(number, out)
    else:
        try:
            result, pong = await run_with_kontrol(number, out)
        except ImportError as exc:  # Kontrol needs the kite-auth-token plugin
            print(f"kite demo: {exc}; 'kite demo --direct' runs without Kontrol", file=sys.stderr)
            return 1
    print(f"square({number}) = {_plain(result)}", file=out)
    print(f"kite.ping = {pong}", file=out)
    return 0 if result == number * number and pong == "pong" else 1


DEMO = ("run the first-kite/second-kite walk-through (with Kontrol)", configure, demo)
