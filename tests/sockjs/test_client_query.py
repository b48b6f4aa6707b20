"""The SockJS client keeps a URL's query string and puts the session path into the path.

Go's SockJS client and sockjs-client turn ``http://h/proxy?kiteID=x`` into
``http://h/proxy/<server>/<session>/websocket?kiteID=x``; a tunnel proxy's URL relies on it.
"""

from __future__ import annotations

import re

import anyio
import pytest
from kite_transport_sockjs.client import dial, session_url
from kite_transport_sockjs.config import SockJSConfig
from kite_transport_sockjs.server import SockJSService

from kitecore.http.server import HTTPRequest, HTTPResponse, HTTPServer
from kitecore.http.websocket import WebSocketConnection
from kitecore.transport import PeerInfo

pytestmark = pytest.mark.anyio


def test_session_url_keeps_the_query() -> None:
    url = session_url("http://h:1/proxy?kiteID=abc")
    path, _, query = url.partition("?")
    assert query == "kiteID=abc"
    assert path.startswith("http://h:1/proxy/")
    assert len(path.split("/")) == 6


@pytest.mark.parametrize("mode", ["websocket", "xhr-polling", "xhr-streaming"])
async def test_dial_sends_the_query_on_every_request(mode: str) -> None:
    seen: list[tuple[str, dict[str, list[str]]]] = []

    async def echo(stream: anyio.abc.ObjectStream[str], peer: PeerInfo) -> None:
        async for message in stream:
            await stream.send(message)

    service = SockJSService(SockJSConfig(), echo)
    server = HTTPServer()

    async def http(request: HTTPRequest, response: HTTPResponse) -> None:
        seen.append((request.path, request.query))
        await service.handle_http(request, response)

    async def websocket(ws: WebSocketConnection, request: HTTPRequest) -> None:
        seen.append((request.path, request.query))
        await service.handle_websocket(ws, request)

    server.add_route(re.compile(r"/proxy(/.*)?"), http)
    server.add_websocket_route(re.compile(r"/proxy/[^/.]+/[^/.]+/websocket"), websocket)
    service.mount(server, "/proxy")  # its own routes come second: ours see every request
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        stream = await dial(f"http://127.0.0.1:{port}/proxy?kiteID=abc", mode)
        try:
            await stream.send("hello")
            with anyio.fail_after(10):
                assert await stream.receive() == "hello"
        finally:
            await stream.aclose()
        tg.cancel_scope.cancel()
    assert seen
    suffix = "websocket" if mode == "websocket" else "xhr"
    assert any(path.endswith("/" + suffix) for path, _ in seen)
    for path, query in seen:
        assert path.startswith("/proxy/"), path
        assert query == {"kiteID": ["abc"]}, (path, query)
