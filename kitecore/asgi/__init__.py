"""Serve a kite from any ASGI 3 server or framework: :meth:`kitecore.Kite.asgi_app`.

``uvicorn``, ``hypercorn`` (asyncio and trio workers) or a Starlette/FastAPI app mount the
application :class:`KiteASGIApp`; see its module :mod:`kitecore.asgi.app` for the paths it
answers and the README's "Deploying" section for examples.
"""

from kitecore.asgi.app import KiteASGIApp
from kitecore.asgi.http import ASGIResponse, ResponseLike
from kitecore.asgi.websocket import ASGIWebSocket

__all__ = ["ASGIResponse", "ASGIWebSocket", "KiteASGIApp", "ResponseLike"]
