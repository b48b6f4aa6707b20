"""A kite mounted in a Starlette app beside the app's own routes, under uvicorn and
hypercorn: both answer, and the app's lifespan starts and stops the kite.

Starlette's ``Mount("/kite", ...)`` passes on ``/kite/...`` but not ``/kite`` itself, so a
kite mounted there is reached at ``http://host/kite/``; mounted last at ``/`` it answers on
``/kite`` exactly like its own server.
"""

from __future__ import annotations

import json

import pytest
from asgi_servers import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from test_asgi_websocket import http_get, make_math_kite

from kitecore import Kite
from kitecore.config import Config
from kitecore.plugins import PluginRegistry

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("mount", "kite_urls"),
    [("/kite", ["/kite/", "/kite/websocket"]), ("/", ["/kite", "/kite/websocket"])],
)
async def test_kite_mounted_next_to_starlette_routes(
    asgi_server: str,
    kite_config: Config,
    kite_plugins: PluginRegistry,
    mount: str,
    kite_urls: list[str],
) -> None:
    kite = make_math_kite(kite_config.copy(), kite_plugins)
    kite_app = kite.asgi_app()

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": request.query_params.get("name", "world")})

    app = Starlette(
        routes=[Route("/hello", hello), Mount(mount, app=kite_app)],
        lifespan=kite_app.lifespan,
    )
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with serve_asgi(app, asgi_server) as port:
        status, _, body = await http_get(port, "/hello?name=kite")
        assert (status, json.loads(body)) == (200, {"hello": "kite"})
        status, _, body = await http_get(port, "/kite/health")
        assert status == 200
        assert json.loads(body)["name"] == "math"
        for path in kite_urls:
            async with caller.new_client(f"http://127.0.0.1:{port}{path}") as client:
                assert await client.tell("square", 6) == 36
        status, _, _ = await http_get(port, "/elsewhere")
        assert status == 404
    assert kite.shutting_down  # the app's lifespan shut the kite down
