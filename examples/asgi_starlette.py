"""The math kite mounted in a Starlette app beside the app's own routes (README "Deploying").

Run (from this folder):  uvicorn asgi_starlette:app --host 127.0.0.1 --port 8000
``/hello`` is the app's, ``/kite`` and ``/kite/health`` the kite's.
"""

from asgi_math import k
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

kite_app = k.asgi_app()


async def hello(request):
    return JSONResponse({"hello": "world"})


app = Starlette(
    routes=[Route("/hello", hello), Mount("/", app=kite_app)],  # the kite last: it takes the rest
    lifespan=kite_app.lifespan,  # Starlette gives no lifespan to mounted apps: pass it here
)
