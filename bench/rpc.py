"""RPC throughput: Kite over raw WebSocket against bare JSON-RPC (``websockets``, ``aiohttp``).

Four workloads, each against a server in another process:

- ``seq``: ``square`` calls one after another on one connection;
- ``conc64``: 64 calls in flight at all times on one connection;
- ``conn100``: 100 connections, each making 200 calls one after another, all in parallel
  (connections are opened before the clock starts);
- ``connect``: connect, one call, close, repeated.

The baselines make the same calls as bare JSON-RPC (``{id, method, params}`` ->
``{id, result}``) with one WebSocket library on both ends, compression off: ``websockets`` and
``aiohttp``. Every peer runs its server in its own process, and its client in another one;
the servers share one core and the clients another when the machine has two or more. Each
figure is the median of ``--repeat`` rounds, the peers taking turns within each round, a
different one first each round. Besides calls/s (connections/s for ``connect``) it prints
the server's and the client's CPU time per call (µs, ``server/client``, read from ``/proc``
on Linux) and the ratios Kite/websockets
and Kite/aiohttp (above 1.0: Kite is faster). ``--tree PATH`` adds a fourth peer: Kite from
another checkout (for before/after in the same run). Both event loops are measured in one run
unless ``--loop`` says otherwise.

In ``conn100`` both processes of a pair are busy, and the pair goes as fast as the slower of
the two lets it. ``--ceilings`` measures each side alone on that workload: every peer's server
driven by a raw client (the peer's request pre-encoded and pre-masked, one write per call, no
JSON), and every peer's client against a raw echo server (it answers each request with the
peer's reply shape, parsing nothing but the id). A pair's ``conn100`` rate is about the lower
of its two ceilings.

    python bench/rpc.py [--calls 5000] [--connects 500] [--repeat 5] [--loop both|asyncio|uvloop]
                        [--tree /path/to/old/checkout] [--workloads seq,conc64,conn100,connect]
                        [--ceilings]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

CONCURRENCY = 64
CONNECTIONS = 100
CALLS_PER_CONNECTION = 200
WORKLOADS = ("seq", "conc64", "conn100", "connect")
BASELINES = ("websockets", "aiohttp")

# --------------------------------------------------------------------------- servers


def serve_kite(uvloop: bool, transports: tuple[str, ...] = ("websocket",)) -> None:
    """Child: a kite serving ``square`` over ``transports`` (plugin names); prints its port."""
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    kite = Kite("square", "1.0.0", config=config, plugins=load_plugins(names=list(transports)))

    async def square(r: Any) -> Any:
        a = r.args.one()
        return a * a

    kite.handle("square", square)

    async def main() -> None:
        async with kite:
            print(kite.port, flush=True)
            await anyio.sleep_forever()

    anyio.run(main, backend_options={"use_uvloop": uvloop})


def serve_websockets(uvloop: bool) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for text in ws:
            request = json.loads(text)
            a = request["params"][0]
            await ws.send(json.dumps({"id": request["id"], "result": a * a}))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(port, flush=True)
            await asyncio.Future()

    _run(main(), uvloop)


def serve_aiohttp(uvloop: bool) -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                call = json.loads(message.data)
                a = call["params"][0]
                await ws.send_str(json.dumps({"id": call["id"], "result": a * a}))
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        await asyncio.Future()

    _run(main(), uvloop)


def _run(coro: Coroutine[Any, Any, None], uvloop: bool) -> None:
    if uvloop:
        import uvloop as _uvloop

        _uvloop.run(coro)
    else:
        asyncio.run(coro)


# --------------------------------------------------------------------------- clients

#: ``call(method, arg)`` returns the result; ``close()`` ends the connection.
Call = Callable[[str, int], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]
#: ``open(url)`` connects and returns ``(call, close)``.
Opener = Callable[[str], Awaitable[tuple[Call, Close]]]


def kite_opener() -> tuple[Opener, Close]:
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    kite = Kite("bench", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))

    async def open_(url: str) -> tuple[Call, Close]:
        client = kite.new_client(url)
        await client.__aenter__()  # as ``async with``, across the workload's calls

        async def close() -> None:
            await client.__aexit__(None, None, None)

        return client.tell, close

    async def finish() -> None:
        pass

    return open_, finish


class JSONRPCClient:
    """A minimal, natural JSON-RPC client: one reader task resolving futures by id."""

    def __init__(self, send: Callable[[str], Awaitable[None]], texts: Any) -> None:
        self.send = send
        self.ids = itertools.count()
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read(texts))

    async def _read(self, texts: Any) -> None:
        async for text in texts:
            reply = json.loads(text)
            self.waiting.pop(reply["id"]).set_result(reply["result"])

    async def call(self, method: str, *params: Any) -> Any:
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        await self.send(json.dumps({"id": request_id, "method": method, "params": params}))
        return await future


def websockets_opener() -> tuple[Opener, Close]:
    from websockets.asyncio.client import connect

    async def open_(url: str) -> tuple[Call, Close]:
        ws = await connect(url, compression=None)
        client = JSONRPCClient(ws.send, ws)

        async def close() -> None:
            client.reader.cancel()
            await ws.close()

        return client.call, close

    async def finish() -> None:
        pass

    return open_, finish


def aiohttp_opener() -> tuple[Opener, Close]:
    import aiohttp

    session: aiohttp.ClientSession | None = None

    async def texts(ws: aiohttp.ClientWebSocketResponse) -> Any:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                yield message.data

    async def open_(url: str) -> tuple[Call, Close]:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        ws = await session.ws_connect(url, compress=0, autoping=True)
        client = JSONRPCClient(ws.send_str, texts(ws))

        async def close() -> None:
            client.reader.cancel()
            await ws.close()

        return client.call, close

    async def finish() -> None:
        if session is not None:
            await session.close()

    return open_, finish


async def run_workload(open_: Opener, url: str, workload: str, n: int) -> float:
    """Run ``workload`` with about ``n`` calls (connections for ``connect``); return per second."""
    if workload == "connect":
        start = time.perf_counter()
        for i in range(n):
            call, close = await open_(url)
            await call("square", i)
            await close()
        return n / (time.perf_counter() - start)

    if workload == "conn100":
        connections = [await open_(url) for _ in range(CONNECTIONS)]
        calls = [call for call, _ in connections]
        per_connection = CALLS_PER_CONNECTION
    else:
        connections = [await open_(url)]
        calls = [connections[0][0]] * (CONCURRENCY if workload == "conc64" else 1)
        per_connection = max(1, n // len(calls))
    try:
        for call in {id(c): c for c in calls}.values():
            await call("square", 1)

        async def worker(call: Call) -> None:
            for i in range(per_connection):
                await call("square", i)

        start = time.perf_counter()
        await asyncio.gather(*(worker(call) for call in calls))
        return per_connection * len(calls) / (time.perf_counter() - start)
    finally:
        for _, close in reversed(connections):  # LIFO: each Kite client owns a task group
            await close()


def client_main(kind: str, url: str, uvloop: bool) -> None:
    """Child: open the peer's client, then run the workloads named on stdin, one a line
    (``WORKLOAD N``), printing the rate of each."""
    openers = {"websockets": websockets_opener, "aiohttp": aiohttp_opener}
    opener, finish = openers.get(kind, kite_opener)()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            workload, n = line.split()
            rate = await run_workload(opener, url, workload, int(n))
            print(rate, flush=True)
        await finish()

    _run(main(), uvloop)


# --------------------------------------------------------------------------- ceilings

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The raw peers' request: square(7), as each kind of server takes it.
_JSONRPC_REQUEST = json.dumps({"id": 5, "method": "square", "params": [7]})
#: The end of the echo server's answer to a Kite request (after its response callback's id).
_KITE_REPLY_END = ',"arguments":[{"error":null,"result":49}],"callbacks":{}}'


def _frame(payload: bytes, key: bytes | None) -> bytes:
    """One final text frame; masked with ``key`` when given (a client's)."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        header = bytes((0x81, mask_bit | n))
    elif n < 65536:
        header = bytes((0x81, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, mask_bit | 127)) + n.to_bytes(8, "big")
    if key is None:
        return header + payload
    return header + key + _xor(payload, key)


def _xor(data: bytes, key: bytes) -> bytes:
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    as_int = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return as_int.to_bytes(len(data), "big")


def _frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the whole frames at the start of ``buffer`` (unmasking them): (opcode, payload)."""
    out = []
    pos, n = 0, len(buffer)
    while n - pos >= 2:
        b0, b1 = buffer[pos], buffer[pos + 1]
        length, start = b1 & 0x7F, pos + 2
        if length == 126:
            length, start = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
        elif length == 127:
            length, start = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
        key = None
        if b1 & 0x80:
            key, start = bytes(buffer[start : start + 4]), start + 4
        if start > n or start + length > n:
            break
        payload = bytes(buffer[start : start + length])
        out.append((b0 & 0x0F, _xor(payload, key) if key else payload))
        pos = start + length
    del buffer[:pos]
    return out


class _EchoServer(asyncio.Protocol):
    """A raw WebSocket server answering every ``square`` request of any peer with the reply
    that peer expects (Kite's response callback, or JSON-RPC's ``id``) and parsing nothing
    else: what a peer's client costs alone."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's: no subclass)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
            self.transport.write(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            self.upgraded = True
        replies = []
        for opcode, payload in _frames(self.buffer):
            if opcode == 0x8:  # close: echoed, then the end
                self.transport.write(bytes((0x88, len(payload))) + payload)
                self.transport.close()
                return
            if opcode == 0x9:  # ping
                replies.append(bytes((0x8A, len(payload))) + payload)
                continue
            text = payload.decode()
            if text.startswith('{"method":"square"'):  # Kite: reply to its response callback
                start = text.rfind('"callbacks":{"') + len('"callbacks":{"')
                callback = text[start : text.index('"', start)]
                reply = '{"method":' + callback + _KITE_REPLY_END
            elif text.startswith('{"id": '):  # JSONRPCClient's: the id comes first
                reply = '{"id": ' + text[7 : text.index(",", 7)] + ', "result": 49}'
            else:
                continue
            replies.append(_frame(reply.encode(), None))
        if replies:
            self.transport.write(b"".join(replies))


def serve_echo(uvloop: bool) -> None:
    """Child: the raw echo server (see :class:`_EchoServer`); prints its port."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

    _run(main(), uvloop)


class _RawClient(asyncio.Protocol):
    """One connection of the raw client: sends ``request`` (a pre-masked frame) again each
    time a reply frame arrives, until ``left`` calls are made."""

    def __init__(self, handshake: bytes, request: bytes) -> None:
        self.handshake, self.request = handshake, request
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.left = 0
        self.finished: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's: no subclass)
        self.transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buffer[: end + 4]
            self.upgraded.set_result(None)
        for opcode, _ in _frames(self.buffer):
            if opcode == 0x8:
                self.transport.close()
                return
            if opcode != 0x1:
                continue
            if self.left > 0:
                self.left -= 1
                self.transport.write(self.request)
            elif self.finished is not None and not self.finished.done():
                self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def start(self, calls: int) -> asyncio.Future[None]:
        self.finished = asyncio.get_running_loop().create_future()
        self.left = calls - 1
        self.transport.write(self.request)
        return self.finished


def raw_client_main(kind: str, url: str, uvloop: bool) -> None:
    """Child: the raw client (see :class:`_RawClient`) against a ``kind`` server; runs the
    ``conn100`` lines on stdin as :func:`client_main` does, printing the rate of each."""
    if kind == "kite":
        from kitecore import Config, Kite
        from kitecore.protocol.envelope import RequestEncoder

        identity = Kite("bench", "1.0.0", config=Config()).identity_wire
        text = RequestEncoder(identity, None).encode_plain("square", [7], 5)
    else:
        text = _JSONRPC_REQUEST
    request = _frame(text.encode(), os.urandom(4))
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = host_port.partition(":")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(CONNECTIONS):
            key = base64.b64encode(os.urandom(16)).decode()
            handshake = (
                f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            _, client = await loop.create_connection(
                lambda h=handshake: _RawClient(h, request), host, int(port)
            )
            await client.upgraded
            clients.append(client)
        while await loop.run_in_executor(None, sys.stdin.readline):  # ("conn100 N" lines)
            for client in clients:  # one call each first, as run_workload does
                await client.start(1)
            start = time.perf_counter()
            await asyncio.gather(*(client.start(CALLS_PER_CONNECTION) for client in clients))
            rate = CONNECTIONS * CALLS_PER_CONNECTION / (time.perf_counter() - start)
            print(rate, flush=True)
        close = os.urandom(4)
        close_frame = bytes((0x88, 0x82)) + close + _xor((1000).to_bytes(2, "big"), close)
        for client in clients:  # a close handshake: the servers log an abrupt end
            client.transport.write(close_frame)
        await asyncio.wait([client.closed for client in clients], timeout=2)
        for client in clients:
            client.transport.close()

    _run(main(), uvloop)


# --------------------------------------------------------------------------- driver


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by every thread of process ``pid``."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])  # nanoseconds on a CPU
        return total / 1e9
    except OSError:
        return float("nan")


@dataclass
class Peer:
    """One measured implementation: its server and client processes and results."""

    label: str
    kind: str  # kite, websockets or aiohttp
    tree: str | None = None
    #: ``--ceilings``: the server is the raw echo server, or the client is the raw client
    echo_server: bool = False
    raw_client: bool = False
    server: subprocess.Popen[str] | None = None
    client: subprocess.Popen[str] | None = None
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    client_cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.tree:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.tree, env.get("PYTHONPATH")]))
        return env

    def start(self, uvloop: bool, server_cpu: int | None, client_cpu: int | None) -> None:
        loop_args = ["--uvloop"] if uvloop else []
        server_kind = "echo" if self.echo_server else self.kind
        self.server = subprocess.Popen(
            [sys.executable, __file__, "--serve", server_kind, *loop_args],
            stdout=subprocess.PIPE,
            text=True,
            env=self._env(),
        )
        if server_cpu is not None:
            os.sched_setaffinity(self.server.pid, {server_cpu})
        assert self.server.stdout is not None
        port = int(self.server.stdout.readline())
        path = "/kite" if self.kind == "kite" else "/"
        self.client = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--raw-client" if self.raw_client else "--client",
                self.kind,
                f"ws://127.0.0.1:{port}{path}",
                *loop_args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self._env(),
        )
        if client_cpu is not None:
            os.sched_setaffinity(self.client.pid, {client_cpu})

    def measure(self, workload: str, n: int) -> None:
        assert self.server and self.client and self.client.stdin and self.client.stdout
        calls = CONNECTIONS * CALLS_PER_CONNECTION if workload == "conn100" else n
        before = cpu_seconds(self.server.pid)
        client_before = cpu_seconds(self.client.pid)
        self.client.stdin.write(f"{workload} {n}\n")
        self.client.stdin.flush()
        line = self.client.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} client died during {workload}")
        used = cpu_seconds(self.server.pid) - before
        client_used = cpu_seconds(self.client.pid) - client_before
        self.rates.setdefault(workload, []).append(float(line))
        self.cpu_us.setdefault(workload, []).append(used / calls * 1e6)
        self.client_cpu_us.setdefault(workload, []).append(client_used / calls * 1e6)

    def stop(self) -> None:
        for process in (self.client, self.server):
            if process is None:
                continue
            if process is self.client and process.stdin:
                process.stdin.close()
            else:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def median(self, workload: str) -> tuple[float, float, float]:
        """Median calls/s, server CPU µs per call and client CPU µs per call of ``workload``."""
        return (
            statistics.median(self.rates[workload]),
            statistics.median(self.cpu_us[workload]),
            statistics.median(self.client_cpu_us[workload]),
        )


def _cpu_pair() -> tuple[int | None, int | None]:
    """The CPUs to pin the server and the client to (None, None: fewer than two CPUs)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _peer_kinds(args: argparse.Namespace) -> list[tuple[str, str, str | None]]:
    """(label, kind, tree) of every peer measured: Kite, Kite of ``--tree``, the baselines."""
    kinds: list[tuple[str, str, str | None]] = [("kite", "kite", None)]
    if args.tree:
        kinds.append(("kite@tree", "kite", args.tree))
    return kinds + [(name, name, None) for name in BASELINES]


def _measure(
    peers: list[Peer],
    uvloop: bool,
    cpus: tuple[int | None, int | None],
    plan: list[tuple[str, int]],
    repeat: int,
) -> None:
    """Start every peer, measure each (workload, size) of ``plan`` ``repeat`` rounds, stop."""
    try:
        for peer in peers:
            peer.start(uvloop, *cpus)
        for workload, size in plan:
            for round_ in range(repeat):
                # each round starts with the next peer: whoever goes first in a round measures
                # lower (seen with two identical checkouts: 0.85-0.9x), so no peer always does
                start = round_ % len(peers)
                for peer in peers[start:] + peers[:start]:
                    peer.measure(workload, size)
    finally:
        for peer in peers:
            peer.stop()


def run_loop(args: argparse.Namespace, uvloop: bool, workloads: list[str]) -> list[str]:
    server_cpu, client_cpu = _cpu_pair()
    peers = [Peer(label, kind, tree) for label, kind, tree in _peer_kinds(args)]
    sizes = {"seq": args.calls, "conc64": args.calls * 2, "conn100": 0}
    sizes["connect"] = args.connects
    plan = [(workload, sizes[workload]) for workload in workloads]
    _measure(peers, uvloop, (server_cpu, client_cpu), plan, args.repeat)

    loop_name = "uvloop" if uvloop else "asyncio"
    print(
        f"event loop: {loop_name}; medians of {args.repeat} rounds; "
        f"server cpu {server_cpu}, client cpu {client_cpu}"
    )
    summary = []
    for workload in workloads:
        unit = "conn/s " if workload == "connect" else "calls/s"
        per = "conn" if workload == "connect" else "call"
        cells = []
        for peer in peers:
            rate, cpu, client_cpu = peer.median(workload)
            cells.append(f"{peer.label} {rate:7.0f} ({cpu:5.1f}/{client_cpu:5.1f} µs)")
        print(f"{workload:8s} {unit} (server/client cpu per {per}): " + "  ".join(cells))
        kite_rate = peers[0].median(workload)[0]
        ratios = [
            f"kite/{peer.label}={kite_rate / peer.median(workload)[0]:.2f}" for peer in peers[1:]
        ]
        print(f"{'':8s} " + " ".join(ratios))
        summary.append(f"{loop_name} {workload}: " + " ".join(ratios))
    print()
    return summary


def run_ceilings(args: argparse.Namespace, uvloop: bool) -> list[str]:
    """``--ceilings``: each peer's server alone (raw client) and client alone (echo server)
    on ``conn100``; prints the rates and returns the summary lines."""
    kinds = _peer_kinds(args)
    servers = [Peer(label, kind, tree, raw_client=True) for label, kind, tree in kinds]
    clients = [Peer(label, kind, tree, echo_server=True) for label, kind, tree in kinds]
    _measure(servers + clients, uvloop, _cpu_pair(), [("conn100", 0)], args.repeat)
    loop_name = "uvloop" if uvloop else "asyncio"
    print(
        f"event loop: {loop_name}; conn100 ceilings, medians of {args.repeat} rounds "
        "(calls/s, cpu µs per call of the side measured)"
    )
    summary = []
    for side, group, cpu_of in (("server", servers, 1), ("client", clients, 2)):
        cells = []
        for peer in group:
            median = peer.median("conn100")
            cells.append(f"{peer.label} {median[0]:7.0f} ({median[cpu_of]:5.1f} µs)")
        print(f"{side} alone: " + "  ".join(cells))
        kite_rate = group[0].median("conn100")[0]
        ratios = " ".join(
            f"kite/{peer.label}={kite_rate / peer.median('conn100')[0]:.2f}" for peer in group[1:]
        )
        print(f"{'':13s}{ratios}")
        summary.append(f"{loop_name} conn100 {side} alone: {ratios}")
    print()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", choices=["both", "asyncio", "uvloop"], default="both")
    parser.add_argument("--uvloop", action="store_true", help="the same as --loop uvloop")
    parser.add_argument("--tree", help="also measure Kite from this checkout (e.g. an old commit)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument(
        "--ceilings",
        action="store_true",
        help="measure each side of conn100 alone (servers: raw client; clients: echo server)",
    )
    parser.add_argument("--serve", choices=["kite", "echo", *BASELINES], help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=["kite", *BASELINES], help=argparse.SUPPRESS)
    parser.add_argument("--raw-client", choices=["kite", *BASELINES], help=argparse.SUPPRESS)
    parser.add_argument("url", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        servers = {
            "kite": serve_kite,
            "echo": serve_echo,
            "websockets": serve_websockets,
            "aiohttp": serve_aiohttp,
        }
        servers[args.serve](args.uvloop)
        return
    if args.raw_client:
        raw_client_main(args.raw_client, args.url, args.uvloop)
        return
    if args.client:
        client_main(args.client, args.url, args.uvloop)
        return

    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload {', '.join(sorted(unknown))}; choose from {WORKLOADS}")
    if args.uvloop:
        args.loop = "uvloop"
    loops = {"both": [False, True], "asyncio": [False], "uvloop": [True]}[args.loop]
    if True in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: measuring asyncio only")
        loops = [False]
    summary = []
    for uvloop in loops:
        if args.ceilings:
            summary += run_ceilings(args, uvloop)
        else:
            summary += run_loop(args, uvloop, workloads)
    print("ratios:")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
