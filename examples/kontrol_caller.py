"""Finds the ``math`` kite through Kontrol and calls ``square(4)`` (the README's discovery
walk-through).

Needs this machine's kite.key and ``python examples/kontrol_math.py`` running. Run:
python examples/kontrol_caller.py       prints 16 (through get_kites) and 25 (through a pool)
"""

import anyio

from kitecore import Kite


async def main():
    k = Kite("caller", "1.0.0")  # username and Kontrol URL come from the kite.key
    async with k.kontrol_client:  # the connection to Kontrol, closed on exit
        clients = await k.get_kites(username="alice", environment="production", name="math")
        async with clients[0] as client:  # carries a token, renewed before it expires
            print(await client.tell("square", 4))  # 16

        async with k.pool("alice/production/math") as pool:  # any matching kite, with failover
            print(await pool.tell("square", 5))  # 25


if __name__ == "__main__":
    anyio.run(main)
