"""The SockJS transport runs the transport contract (:mod:`kitecore.contracts.transport`)."""

from __future__ import annotations

from kitecore.contracts.transport import TransportContract


class TestSockJSTransport(TransportContract):
    transport = "sockjs"
    plugins = ("sockjs",)  # no raw WebSocket to fall back to
