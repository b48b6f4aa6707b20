"""Bad input and abuse: tunnel tokens, unknown kites, kite.tunnel from strangers, oversized
messages, slow clients."""

from __future__ import annotations

import re
import time

import anyio
import pytest
from anyio.streams.stapled import StapledObjectStream
from kite_proxy import MAX_QUEUED_MESSAGES, TunnelTokenError, TunnelTokens, pipe
from kite_transport_sockjs.channels import SessionChannel
from kite_transport_sockjs.config import SockJSConfig
from kite_transport_sockjs.session import Session
from proxy_helpers import Farm

from kitecore import Authentication, GenericError, KiteError
from kitecore.http import (
    HTTPClient,
    HTTPRequest,
    HTTPServer,
    WebSocketConnection,
    connect_websocket,
)

pytestmark = pytest.mark.anyio


async def _tunnel_refused(netloc: str, token: str) -> bool:
    """Whether the proxy's /tunnel closes without opening a SockJS session for ``token``."""
    ws = await connect_websocket(f"ws://{netloc}/tunnel/123/abcdef/websocket?token={token}")
    try:
        with anyio.fail_after(5):
            first = await ws.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return True
    finally:
        await ws.aclose()
    return first != "o"


async def test_tunnel_tokens_forged_expired_replayed_or_never_issued_are_refused(
    farm: Farm,
) -> None:
    proxy, _ = await farm.tunnel_proxy()
    issued: list[str] = []
    sign = proxy.tokens.sign

    def recording_sign(kite_id: str, seq: int, **kw: float) -> str:
        token = sign(kite_id, seq, **kw)
        issued.append(token)
        return token

    proxy.tokens.sign = recording_sign  # type: ignore[method-assign]
    kite = farm.kite()
    public, _ = await farm.behind_tunnel(kite)
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    async with client:
        assert await client.tell("square", 3) == 9
    assert len(issued) == 1

    # replayed: the token opened its tunnel already
    assert await _tunnel_refused(proxy.netloc, issued[0])
    # forged: signed with another key
    assert await _tunnel_refused(proxy.netloc, TunnelTokens().sign(kite.id, 1))
    # never issued: a sequence number the proxy did not hand out
    assert await _tunnel_refused(proxy.netloc, sign(kite.id, 999_999))
    # garbage
    assert await _tunnel_refused(proxy.netloc, "not-a-jwt")
    # expired (and why)
    expired = sign(kite.id, 2, now=time.time() - 2 * 3600)
    assert await _tunnel_refused(proxy.netloc, expired)
    with pytest.raises(TunnelTokenError, match="expired"):
        proxy.claim(expired)
    with pytest.raises(TunnelTokenError, match="signature"):
        proxy.claim(TunnelTokens().sign(kite.id, 1))
    # nothing was left waiting, and the proxy still works
    assert proxy.tunnels == 0
    async with caller.new_client(public, auth=Authentication("token", client.auth.key)) as again:  # type: ignore[union-attr]
        assert await again.tell("square", 4) == 16


async def test_an_unregistered_kite_id_is_refused(farm: Farm) -> None:
    proxy, _ = await farm.tunnel_proxy()
    caller = await farm.caller()
    for transport in ("WebSocket", "XHRPolling"):
        with pytest.raises(KiteError, match="can't connect"):
            async with caller.new_client(
                f"http://{proxy.netloc}/proxy?kiteID=nobody", transport=transport
            ):
                pass
    async with HTTPClient(timeout=5) as http:
        answer = await http.request("POST", f"http://{proxy.netloc}/proxy/1/abc/xhr?kiteID=x")
    assert answer.status == 404
    assert proxy.tunnels == 0


async def test_kite_tunnel_is_refused_from_anyone_but_the_tunnel_proxy(farm: Farm) -> None:
    await farm.tunnel_proxy()
    kite = farm.kite()
    await farm.start(lambda: kite)  # this one listens too, so a stranger can call it directly
    await farm.behind_tunnel(kite)
    caller = await farm.caller()
    token = await caller.get_token({"name": "square", "username": "alice"})
    async with caller.new_client(kite.url, auth=Authentication("token", token)) as client:
        assert await client.tell("square", 2) == 4
        with pytest.raises(GenericError, match="only from the tunnel proxy"):
            await client.tell("kite.tunnel", {"url": "ws://127.0.0.1:1/tunnel/1/2/websocket"})


@pytest.mark.parametrize("which", ["tunnel", "reverse"])
async def test_oversized_messages_end_that_session_only(farm: Farm, which: str) -> None:
    limit = 64 * 1024
    if which == "tunnel":
        await farm.tunnel_proxy(max_message_size=limit)
        kite = farm.kite()
        await farm.behind_tunnel(kite)
    else:
        kite = farm.kite(ip="127.0.0.2", max_message_size=limit)
        await farm.reverse_proxy()
        await farm.behind_proxy(kite)
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    client.transport = "WebSocket"
    async with client:
        with pytest.raises(KiteError):
            await client.tell("length", "x" * (2 * limit), timeout=5)
    (client,) = await caller.get_kites(name="square")
    async with client:  # the proxy and the kite are fine
        assert await client.tell("length", "x" * 1000) == 1000


async def test_a_slow_client_holds_a_bounded_queue_then_is_dropped() -> None:
    """A caller that never polls its xhr session: the pipe stops reading from the kite once
    ``MAX_QUEUED_MESSAGES`` wait, and closes the session when nothing drains."""
    session = Session("s1", SockJSConfig(), time.monotonic())
    session.send()  # nothing; open the session as the server does on the first poll
    channel = SessionChannel(session, lambda: None)
    send, receive = anyio.create_memory_object_stream[str](0)
    produced = 0

    async def produce() -> None:
        nonlocal produced
        with pytest.raises((anyio.BrokenResourceError, anyio.ClosedResourceError)):
            for produced in range(1, 100_000):  # noqa: B007
                await send.send("m" * 100)

    other_send, _other_receive = anyio.create_memory_object_stream[str](0)
    kite_side = StapledObjectStream(other_send, receive)
    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        with anyio.fail_after(10):
            await pipe(kite_side, channel, drain_timeout=0.3)
    assert session.pending <= MAX_QUEUED_MESSAGES
    assert produced <= MAX_QUEUED_MESSAGES + 2


async def test_a_websocket_client_that_does_not_read_stops_the_copy() -> None:
    """Through a websocket the copy waits for the peer: memory stays bounded by the socket
    buffers, whatever the other side sends."""
    chunk = "m" * 65536
    limit = 2000  # 128 MiB if nothing held the copy back
    produced = 0
    send, receive = anyio.create_memory_object_stream[str](0)
    _unused_send, _unused_receive = anyio.create_memory_object_stream[str](0)
    source = StapledObjectStream(_unused_send, receive)

    async def handler(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await pipe(source, ws)

    async def produce() -> None:
        nonlocal produced
        try:
            for produced in range(1, limit + 1):  # noqa: B007
                await send.send(chunk)
        except anyio.BrokenResourceError:
            pass  # the client left: the copy ended and closed its source

    server = HTTPServer()
    server.add_websocket_route(re.compile(r"/slow"), handler)
    async with anyio.create_task_group() as group:
        port = await group.start(server.serve, "127.0.0.1", 0)
        client = await connect_websocket(f"ws://127.0.0.1:{port}/slow")  # and never reads
        group.start_soon(produce)
        last = -1
        with anyio.fail_after(30):
            while produced != last:  # until the producer is held back
                last = produced
                await anyio.sleep(0.5)
        assert produced < limit // 4, produced  # at most a few socket buffers' worth
        await client.aclose()
        group.cancel_scope.cancel()
