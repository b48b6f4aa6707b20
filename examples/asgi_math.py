"""A kite served by any ASGI server: ``app`` is its ASGI application (README "Deploying").

Run (from this folder):  uvicorn asgi_math:app --host 127.0.0.1 --port 8000
                     or  hypercorn asgi_math:app --bind 127.0.0.1:8000 --worker-class trio
Callers reach it at http://127.0.0.1:8000/kite. With KITE_PUBLIC_URL set to the URL callers
use (https://math.example.com/kite) and a kite.key from `kite register`, it registers with
Kontrol on startup and leaves on shutdown.
"""

import os

from kitecore import Kite

k = Kite("math", "1.0.0")


@k.handle("square", auth=False)
async def square(r):
    a = r.args.one(float)
    return a * a


app = k.asgi_app(url=os.environ.get("KITE_PUBLIC_URL"))
