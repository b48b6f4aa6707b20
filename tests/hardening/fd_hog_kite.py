"""The attack kite with its descriptors nearly used up: it starts serving, then holds open
files until only ``HOG_LEAVE`` (environment, default 16) descriptors are left, so that
accepting connections soon fails with EMFILE. Same contract as ``attack_kite.py``.
"""

from __future__ import annotations

import os
import sys

import anyio
from attack_kite import build


def hog(leave: int) -> list[int]:
    """Open /dev/null until EMFILE, then close ``leave`` of them; returns the ones held."""
    held: list[int] = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    for fd in held[len(held) - leave :]:
        os.close(fd)
    return held[: len(held) - leave]


async def main(port: int) -> None:
    async with build(port) as kite:
        held = hog(int(os.environ.get("HOG_LEAVE", "16")))
        print(f"serving on {kite.url} (holding {len(held)} descriptors)", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), backend=os.environ.get("KITE_ANYIO_BACKEND", "asyncio"))
