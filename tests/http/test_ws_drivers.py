"""The two WebSocket drivers on real sockets (kitecore.http.asyncio_driver, anyio_driver).

Most behaviour is shared and covered by test_ws_connection.py on both backends; these tests
pin what is specific: which driver is chosen, descriptors, cancellation, read-ahead, flow
control.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.abc import SocketAttribute, SocketListener
from anyio.lowlevel import checkpoint
from anyio.streams.tls import TLSAttribute
from http_helpers import EVERY_LOOP, loop_backend, serving

from kitecore.http import HTTPRequest, HTTPServer, WebSocketConnection, connect_websocket
from kitecore.http.anyio_driver import AnyioWebSocket
from kitecore.http.asyncio_driver import AsyncioByteStream, AsyncioWebSocket, connect_tcp
from kitecore.http.frames import OP_TEXT, FrameDecoder, encode_frame
from kitecore.http.websocket import open_websocket
from kitecore.http.wscore import WebSocketCore

pytestmark = pytest.mark.anyio

#: asyncio, uvloop and trio: the drivers differ per loop
anyio_backend = pytest.fixture(params=EVERY_LOOP, name="anyio_backend")(loop_backend)


def _on_asyncio(backend: Any) -> bool:
    return (backend if isinstance(backend, str) else backend[0]) == "asyncio"


#: For tests of the asyncio Protocol implementation itself: asyncio and uvloop, not trio.
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", EVERY_LOOP[:2], indirect=True)


async def echo(ws: WebSocketConnection, request: HTTPRequest) -> None:
    async for message in ws:
        await ws.send(message)


def echo_server() -> HTTPServer:
    server = HTTPServer()
    server.add_websocket_route("/ws", echo)
    return server


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_protocol_implementation_on_asyncio_only(anyio_backend: Any) -> None:
    server = HTTPServer()
    seen: list[type] = []

    async def record(ws: WebSocketConnection, request: HTTPRequest) -> None:
        seen.append(type(ws))
        await echo(ws, request)

    server.add_websocket_route("/ws", record)
    async with serving(server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        await ws.send("x")
        with anyio.fail_after(5):
            assert await ws.receive() == "x"
        assert ws.extra(SocketAttribute.remote_port) == port
        await ws.aclose()
    expected = AsyncioWebSocket if _on_asyncio(anyio_backend) else AnyioWebSocket
    assert seen == [expected] and type(ws) is expected


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_no_descriptor_leaks_over_200_connections() -> None:
    server = echo_server()

    async def echo_once(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await ws.send(await ws.receive())

    server.add_websocket_route("/once", echo_once)
    async with serving(server) as port:
        # one connection first, so lazily created descriptors (selectors, ...) exist
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        await ws.aclose()
        for _ in range(20):
            await checkpoint()
        baseline = _open_fds()
        with anyio.fail_after(30):
            for i in range(200):
                if i % 2:  # the client closes
                    ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
                    await ws.send_many([str(i), "b"])
                    assert await ws.receive() == str(i)
                    await ws.aclose(4000, "bye")
                else:  # the server closes
                    ws = await connect_websocket(f"ws://127.0.0.1:{port}/once")
                    await ws.send(str(i))
                    assert await ws.receive() == str(i)
                    with pytest.raises(anyio.EndOfStream):
                        await ws.receive()
                    await ws.aclose()
            # the server's side of the last connection may still be closing
            for _ in range(500):
                if _open_fds() <= baseline:
                    break
                await anyio.sleep(0.01)
        assert _open_fds() == baseline


async def test_cancelled_receive_loses_no_message(anyio_backend: Any) -> None:
    server = HTTPServer()
    go = anyio.Event()

    async def send_later(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await go.wait()
        await ws.send("late")
        await ws.receive()  # until the client closes

    server.add_websocket_route("/ws", send_later)
    async with serving(server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        with anyio.move_on_after(0.05) as scope:
            await ws.receive()
        assert scope.cancelled_caught
        go.set()
        with anyio.fail_after(5):
            assert await ws.receive() == "late"
        await ws.aclose()


@ASYNCIO_ONLY
async def test_receive_cancelled_as_its_message_arrives_keeps_it(anyio_backend: Any) -> None:
    """The message that wakes a receive being cancelled is returned now or by the next one."""
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        assert isinstance(ws, AsyncioWebSocket)
        got: list[str] = []
        scope = anyio.CancelScope()

        async def receiver() -> None:
            with scope:
                got.append(await ws.receive())

        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await wait_all_tasks_blocked()
            ws.data_received(encode_frame(OP_TEXT, b"wake", mask=False))
            scope.cancel()
        with anyio.fail_after(5):
            if not got:
                got.append(await ws.receive())
            assert got == ["wake"]
            await ws.send("next")
            assert await ws.receive() == "next"
        await ws.aclose()


@ASYNCIO_ONLY
async def test_bytes_read_ahead_of_the_upgrade_are_not_lost(anyio_backend: Any) -> None:
    """Bytes the HTTP phase had buffered past the handshake come first, in order."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    assert isinstance(listener, SocketListener)
    port = listener.extra(SocketAttribute.local_port)
    async with listener:
        client = await connect_tcp("127.0.0.1", port)
        assert isinstance(client, AsyncioByteStream)
        server = await listener.accept()
        # as if "two" had been read ahead of the handshake bytes h11 consumed
        client.data_received(encode_frame(OP_TEXT, b"two", mask=False))
        ws = open_websocket(
            client, client=True, initial_data=encode_frame(OP_TEXT, b"zero", mask=False)
        )
        assert isinstance(ws, AsyncioWebSocket)
        await server.send(encode_frame(OP_TEXT, b"one", mask=False))
        with anyio.fail_after(5):
            assert [await ws.receive() for _ in range(3)] == ["zero", "two", "one"]
        await server.aclose()
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await ws.receive()
        assert ws.close_code == 1006
        await ws.aclose()


class _CountingTransport:
    """An asyncio transport that records what is written to it."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _asyncio_ws_and_raw_peer(
    listener: Any,
) -> tuple[AsyncioWebSocket, anyio.abc.SocketStream, _CountingTransport]:
    """A client AsyncioWebSocket on a counting transport, and the raw socket it talks to."""
    loop = asyncio.get_running_loop()
    port = listener.extra(SocketAttribute.local_port)
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    peer = await listener.accept()
    counting = _CountingTransport(transport)
    ws = AsyncioWebSocket(loop, cast(asyncio.Transport, counting), WebSocketCore(client=True))
    transport.set_protocol(ws)
    return ws, peer, counting


@ASYNCIO_ONLY
async def test_answers_to_messages_read_together_leave_in_one_write(anyio_backend: Any) -> None:
    """Messages that arrived in one read are answered with one write (one system call), in
    order."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    async with listener:
        ws, peer, counting = await _asyncio_ws_and_raw_peer(listener)
        texts = [f"m{i}" for i in range(5)]
        await peer.send(b"".join(encode_frame(OP_TEXT, t.encode(), mask=False) for t in texts))
        decoder = FrameDecoder(expect_masked=True, max_message_size=1 << 20)
        with anyio.fail_after(5):
            for _ in texts:
                await ws.send("re:" + await ws.receive())
            while len(decoder.messages) < len(texts):
                decoder.feed(await peer.receive())
        assert list(decoder.messages) == ["re:" + t for t in texts]
        assert len(counting.writes) == 1
        await ws.aclose()
        await peer.aclose()


@ASYNCIO_ONLY
async def test_an_answer_leaves_while_other_messages_wait_untaken(anyio_backend: Any) -> None:
    """An answer written while more received messages wait (and nobody takes them) is held
    back for one loop pass at most: it still leaves."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    async with listener:
        ws, peer, _ = await _asyncio_ws_and_raw_peer(listener)
        frames = [encode_frame(OP_TEXT, t, mask=False) for t in (b"one", b"two")]
        await peer.send(b"".join(frames))
        decoder = FrameDecoder(expect_masked=True, max_message_size=1 << 20)
        with anyio.fail_after(5):
            assert await ws.receive() == "one"
            ws.write_nowait(["held"])
            while not decoder.messages:
                decoder.feed(await peer.receive())
        assert list(decoder.messages) == ["held"]
        await peer.aclose()
        await ws.aclose()


@ASYNCIO_ONLY
async def test_writes_held_for_the_tasks_just_woken_leave_together(anyio_backend: Any) -> None:
    """hold_writes(): what the tasks ready in this loop pass write leaves in one write, in
    order, once they have run; tasks woken by a later hold_writes() in the same pass write in
    the next flush; nothing is lost."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    async with listener:
        ws, peer, counting = await _asyncio_ws_and_raw_peer(listener)
        events = [anyio.Event() for _ in range(6)]
        done = anyio.Event()
        finished = 0

        async def caller(n: int) -> None:
            nonlocal finished
            await events[n].wait()
            ws.write_nowait([f"call {n}"])
            finished += 1
            if finished == len(events):
                done.set()

        async with anyio.create_task_group() as tg:
            for n in range(len(events)):
                tg.start_soon(caller, n)
            await wait_all_tasks_blocked()
            for event in events:  # as a reader delivering replies: wake, then hold
                event.set()
                ws.hold_writes()
            assert counting.writes == []  # nothing leaves while held
            with anyio.fail_after(5):
                await done.wait()
        decoder = FrameDecoder(expect_masked=True, max_message_size=1 << 20)
        with anyio.fail_after(5):
            while len(decoder.messages) < len(events):
                decoder.feed(await peer.receive())
        assert list(decoder.messages) == [f"call {n}" for n in range(len(events))]
        assert 1 <= len(counting.writes) <= 2  # the first caller's flush, then the others'
        written = len(counting.writes)
        ws.write_nowait(["after"])  # no longer held: written at once
        assert len(counting.writes) == written + 1
        with anyio.fail_after(5):
            while len(decoder.messages) < len(events) + 1:
                decoder.feed(await peer.receive())
        assert decoder.messages[-1] == "after"
        await ws.aclose()
        await peer.aclose()


@ASYNCIO_ONLY
async def test_receive_hook_takes_messages_in_order_and_leaves_the_rest(
    anyio_backend: Any,
) -> None:
    """set_receive_hook(): each message is offered as it arrives, oldest first; what the hook
    takes never reaches receive(), and once it refuses one, that one and those after it are
    received in order (and offered again, oldest first, when more arrive)."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    async with listener:
        ws, peer, _ = await _asyncio_ws_and_raw_peer(listener)
        offered: list[str] = []
        taken: list[str] = []
        arrived = anyio.Event()

        def hook(text: str) -> bool:
            offered.append(text)
            if text.startswith("take"):
                taken.append(text)
                if text == "take 3":
                    arrived.set()
                return True
            return False

        ws.set_receive_hook(hook)
        texts = (b"take 1", b"take 2", b"keep 1", b"take 3")
        await peer.send(b"".join(encode_frame(OP_TEXT, t, mask=False) for t in texts))
        with anyio.fail_after(5):
            assert await ws.receive() == "keep 1"
            assert await ws.receive() == "take 3"  # after a refused one: received, in order
            await peer.send(encode_frame(OP_TEXT, b"take 3", mask=False))
            await arrived.wait()
        assert taken == ["take 1", "take 2", "take 3"]
        assert offered == ["take 1", "take 2", "keep 1", "take 3"]
        ws.set_receive_hook(None)
        await peer.send(encode_frame(OP_TEXT, b"take 4", mask=False))
        with anyio.fail_after(5):
            assert await ws.receive() == "take 4"
        await peer.aclose()
        await ws.aclose()


@ASYNCIO_ONLY
async def test_reading_pauses_while_many_messages_wait(anyio_backend: Any) -> None:
    count = 3000
    server = HTTPServer()

    async def flood(ws: WebSocketConnection, request: HTTPRequest) -> None:
        await ws.send_many([str(i) for i in range(count)])
        await ws.receive()

    server.add_websocket_route("/ws", flood)
    async with serving(server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        assert isinstance(ws, AsyncioWebSocket)
        transport = ws._transport
        with anyio.fail_after(5):
            for _ in range(1000):
                if not transport.is_reading():
                    break
                await anyio.sleep(0.005)
            assert not transport.is_reading()
            assert [await ws.receive() for _ in range(count)] == [str(i) for i in range(count)]
        assert transport.is_reading()
        await ws.aclose()


@ASYNCIO_ONLY
async def test_senders_wait_while_the_peer_does_not_read(anyio_backend: Any) -> None:
    """Cancelling a send that waits for the transport to drain leaves no partial frame.

    (The portable implementation finishes a partly written frame under a shield instead.)
    """
    server = HTTPServer()
    start_reading = anyio.Event()
    total = 0

    async def slow(ws: WebSocketConnection, request: HTTPRequest) -> None:
        nonlocal total
        await start_reading.wait()
        async for message in ws:
            total += len(message)
            if message == "end":
                await ws.send("done")

    server.add_websocket_route("/ws", slow)
    async with serving(server) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        chunk = "x" * 65536
        sent = 0
        with anyio.move_on_after(1):
            while sent < 400:  # 25 MiB: far more than the kernel buffers hold
                await ws.send(chunk)
                sent += 1
        assert sent < 400
        queued = "queued while paused"
        if isinstance(ws, AsyncioWebSocket):
            # write_nowait never refuses: the transport buffers it (counted against a limit)
            assert ws.write_nowait([queued]) is True
            assert ws.pending_bytes == 0
        start_reading.set()
        with anyio.fail_after(10):
            await ws.send_many(["end"])
            assert await ws.receive() == "done"
        assert total == sent * len(chunk) + len(queued) + 3
        await ws.aclose()


async def test_aclose_ends_a_waiting_receive(anyio_backend: Any) -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        outcome: list[type] = []

        async def receiver() -> None:
            try:
                await ws.receive()
            except Exception as exc:
                outcome.append(type(exc))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receiver)
                await wait_all_tasks_blocked()
                await ws.aclose()
        assert outcome == [anyio.ClosedResourceError]
        assert ws.close_code == 1000
        if isinstance(ws, AsyncioWebSocket):
            with pytest.raises(anyio.ClosedResourceError):
                ws.write_nowait(["x"])


@ASYNCIO_ONLY
async def test_second_receiver_is_refused(anyio_backend: Any) -> None:
    async with serving(echo_server()) as port:
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/ws")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ws.receive)
            await wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await ws.receive()
            await ws.send("unblock")
        await ws.aclose()


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    return server_context, client_context


async def test_tls_websocket_on_each_driver(anyio_backend: Any, tmp_path: Path) -> None:
    """``serve(ssl_context=)`` and ``connect_websocket(ssl_context=)``: on asyncio TLS runs on
    the asyncio driver (``ssl=`` of the loop), elsewhere on anyio's TLS stream."""
    server_context, client_context = _tls_contexts(tmp_path)
    server = HTTPServer()
    seen: list[type] = []

    async def record(ws: WebSocketConnection, request: HTTPRequest) -> None:
        seen.append(type(ws))
        await echo(ws, request)

    server.add_websocket_route("/ws", record)
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            functools.partial(server.serve, "127.0.0.1", 0, ssl_context=server_context)
        )
        with anyio.fail_after(10):
            ws = await connect_websocket(f"wss://127.0.0.1:{port}/ws", ssl_context=client_context)
            await ws.send_many(["a", "b" * 100_000])
            assert [await ws.receive(), len(await ws.receive())] == ["a", 100_000]
            assert ws.extra(TLSAttribute.ssl_object) is not None
            await ws.aclose()
            with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
                await connect_websocket(f"wss://127.0.0.1:{port}/ws")
        tg.cancel_scope.cancel()
    expected = AsyncioWebSocket if _on_asyncio(anyio_backend) else AnyioWebSocket
    # (uvloop's connect_accepted_socket cannot do TLS: its server side takes anyio's)
    server_side = AnyioWebSocket if isinstance(anyio_backend, tuple) else expected
    assert seen == [server_side] and type(ws) is expected
