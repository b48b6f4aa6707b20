"""A kite that stays registered with Kontrol and serves ``square`` (the README's discovery
walk-through).

Needs this machine's kite.key (``kite register --to http://127.0.0.1:4000/kite --username
alice``) and a running Kontrol. Run:  python examples/kontrol_math.py   (Ctrl-C stops it)
Then find and call it: ``kite query --name math``, ``python examples/kontrol_caller.py``.
"""

import anyio

from kitecore import Kite

k = Kite("math", "1.0.0")  # username and Kontrol URL come from the kite.key
k.config.environment = "production"


@k.handle("square")  # callers need a token from Kontrol (authentication is on by default)
async def square(r):
    a = r.args.one()
    return a * a


async def main():
    async with k:  # serves on a free port (KITE_PORT to choose one)
        await k.register_forever()  # re-registers after every reconnect, with backoff
        await k.kontrol_client.registered.wait()  # the first registration went through
        print(f"{k.identity.path} serving on {k.url}, registered", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass
