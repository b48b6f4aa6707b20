"""``GET /metrics``: a registry in Prometheus' text format, on a kite's own HTTP server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kitecore.http import HTTPRequest, HTTPResponse

__all__ = ["metrics_handler"]


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[HTTPRequest, HTTPResponse], Awaitable[None]]:
    """An HTTP handler (for ``kite.handle_http``) answering with ``registry``'s samples."""

    async def handler(request: HTTPRequest, response: HTTPResponse) -> None:
        body = generate_latest(registry)
        await response.send(200, [("content-type", CONTENT_TYPE_LATEST)], body)

    return handler
