"""The second kite: calls ``square(4)`` on the first kite and prints 16.

Run the first kite (python examples/first.py), then:  python examples/second.py [URL]
"""

import sys

import anyio

from kitecore import Kite


async def main(url: str) -> None:
    k = Kite("second", "1.0.0")
    async with k.new_client(url) as client:
        print(await client.tell("square", 4))  # 16
        print(await client.tell("kite.ping"))  # pong


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://localhost:6000/kite")
