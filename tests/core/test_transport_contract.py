"""The built-in transports run the transport contract (:mod:`kitecore.contracts.transport`)."""

from __future__ import annotations

from kitecore.contracts.transport import TransportContract
from kitecore.kite import Kite


class TestWebSocketTransport(TransportContract):
    transport = "websocket"
    plugins = ("websocket",)


class TestLoopbackTransport(TransportContract):
    transport = "loopback"
    plugins = ("websocket", "loopback")  # a kite's HTTP server is what loopback mounts on

    def url_for(self, kite: Kite) -> str:
        return kite.url.replace("http://", "loopback://")

    def unused_url(self, port: int) -> str:
        return f"loopback://127.0.0.1:{port}/kite"
