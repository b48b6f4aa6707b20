"""The built-in raw ``websocket`` transport."""

from __future__ import annotations

import anyio
import pytest
from http_helpers import serving

from kitecore.http import HTTPServer
from kitecore.transport import DialOptions, MessageStream, PeerInfo, Transport
from kitecore.transports.websocket import WebSocketTransport, kite_register_transports

pytestmark = pytest.mark.anyio


def test_identity_and_accepted_urls() -> None:
    transport = WebSocketTransport()
    assert isinstance(transport, Transport)
    assert (transport.name, transport.priority) == ("websocket", 10)
    for url in ("ws://h:1/kite", "wss://h/kite", "http://h:1/kite", "HTTPS://h/kite"):
        assert transport.accepts(url)
    for url in ("loopback://h:1/kite", "ftp://h/", "h:1"):
        assert not transport.accepts(url)


def test_hook_registers_one_transport() -> None:
    registered: list[object] = []
    kite_register_transports(registered.append)
    assert len(registered) == 1 and isinstance(registered[0], WebSocketTransport)


@pytest.mark.parametrize("suffix", ["", "/websocket"])
async def test_mount_and_connect_carry_messages(suffix: str) -> None:
    transport = WebSocketTransport()
    server = HTTPServer()
    peers: list[PeerInfo] = []

    async def on_accept(stream: MessageStream, peer: PeerInfo) -> None:
        peers.append(peer)
        async for message in stream:
            await stream.send(message.upper())

    transport.mount(server, "/kite", on_accept)
    async with serving(server) as port:
        options = DialOptions(headers=(("x-test", "1"),))
        stream = await transport.connect(f"http://127.0.0.1:{port}/kite{suffix}", options)
        with anyio.fail_after(5):
            await stream.send('{"method":"ping"}')
            assert await stream.receive() == '{"METHOD":"PING"}'
        await stream.aclose()
    (peer,) = peers
    assert peer.transport == "websocket"
    assert peer.remote_address.startswith("127.0.0.1:")
    assert ("x-test", "1") in peer.headers
