"""The first kite: serves ``square`` on port 6000.

Run:  python examples/first.py      (then, in another terminal, python examples/second.py)
Set KITE_PORT to serve on another port.
"""

import logging

from kitecore import Kite

logging.basicConfig(level=logging.INFO)

k = Kite("first", "1.0.0")
k.config.port = k.config.port or 6000  # KITE_PORT, when set, wins
k.config.disable_authentication = True


@k.handle("square")
async def square(r):
    a = r.args.one(float)
    result = a * a
    print(f"call received, sending result {result} back")
    return result


if __name__ == "__main__":
    k.run()
