"""The attack kite plus ``flood(count, size, callback)``: the kite calls ``callback`` with a
``size``-character string ``count`` times, as fast as it can (server-initiated sends, like a
heartbeat). Same contract as ``attack_kite.py``.
"""

from __future__ import annotations

import os
import sys

import anyio
import anyio.lowlevel
from attack_kite import build

from kitecore import Kite


def build_flood(port: int) -> Kite:
    kite = build(port)

    @kite.handle("flood")
    async def flood(r):  # type: ignore[no-untyped-def]
        count, size, callback = r.args.of_length(3)
        text = "x" * int(size)
        for _ in range(int(count)):
            callback(text)
            await anyio.lowlevel.checkpoint()
        return True

    return kite


async def main(port: int) -> None:
    async with build_flood(port) as kite:
        print(f"serving on {kite.url}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), backend=os.environ.get("KITE_ANYIO_BACKEND", "asyncio"))
