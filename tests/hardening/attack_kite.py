"""A kite to attack, run as its own process by ``hardening_helpers.KiteProcess``.

``python attack_kite.py PORT`` serves ``square``, ``echo`` (returns its arguments, callbacks
included) and ``sleep`` on 127.0.0.1:PORT with authentication off, then prints
``serving on URL`` on stdout. Limits come from the ``KITE_*`` environment, as for any kite.
"""

from __future__ import annotations

import os
import sys

import anyio

from kitecore import Kite


def build(port: int) -> Kite:
    kite = Kite("attacked", "1.0.0")
    kite.config.ip = "127.0.0.1"
    kite.config.port = port
    kite.config.disable_authentication = True

    @kite.handle("square")
    async def square(r):  # type: ignore[no-untyped-def]
        a = r.args.one()
        return a * a

    @kite.handle("echo")
    async def echo(r):  # type: ignore[no-untyped-def]
        return list(r.args)

    @kite.handle("sleep")
    async def sleep(r):  # type: ignore[no-untyped-def]
        await anyio.sleep(float(r.args.one()))
        return True

    return kite


async def main(port: int) -> None:
    async with build(port) as kite:
        print(f"serving on {kite.url}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), backend=os.environ.get("KITE_ANYIO_BACKEND", "asyncio"))
