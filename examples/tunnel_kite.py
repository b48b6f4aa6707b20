"""A kite that listens nowhere, reachable through a tunnel proxy (README: "Reaching kites behind
NAT: proxies"). Run it with a kite.key (``kite register``) and a ``kite tunnelproxy`` running
as Kontrol's user; it keeps running."""

import anyio
from kite_proxy import register_to_tunnel

from kitecore import Kite

k = Kite("hidden", "1.0.0")  # username and Kontrol URL come from the kite.key
k.config.environment = "production"


@k.handle("square")
async def square(r):
    a = r.args.one()
    return a * a


async def main():
    # no 'async with k': the kite opens no port; it dials the proxy and serves callers through it
    async with anyio.create_task_group() as group:
        public = await group.start(register_to_tunnel, k)  # finds a tunnelproxy through Kontrol
        print(f"{k.identity.path} reachable at {public}", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass
