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

    python bench/rpc.py [--calls 5000] [--connects 500] [--repeat 5] [--loop both|asyncio|uvloop]
                        [--tree /path/to/old/checkout] [--workloads seq,conc64,conn100,connect]
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

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
        self.server = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.kind, *loop_args],
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
                "--client",
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


def run_loop(args: argparse.Namespace, uvloop: bool, workloads: list[str]) -> list[str]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    peers = [Peer("kite", "kite")]
    if args.tree:
        peers.append(Peer("kite@tree", "kite", args.tree))
    peers += [Peer(name, name) for name in BASELINES]
    try:
        for peer in peers:
            peer.start(uvloop, server_cpu, client_cpu)
        sizes = {"seq": args.calls, "conc64": args.calls * 2, "conn100": 0}
        sizes["connect"] = args.connects
        for workload in workloads:
            for round_ in range(args.repeat):
                # each round starts with the next peer: whoever goes first in a round measures
                # lower (seen with two identical checkouts: 0.85-0.9x), so no peer always does
                start = round_ % len(peers)
                for peer in peers[start:] + peers[:start]:
                    peer.measure(workload, sizes[workload])
    finally:
        for peer in peers:
            peer.stop()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", choices=["both", "asyncio", "uvloop"], default="both")
    parser.add_argument("--uvloop", action="store_true", help="the same as --loop uvloop")
    parser.add_argument("--tree", help="also measure Kite from this checkout (e.g. an old commit)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--serve", choices=["kite", *BASELINES], help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=["kite", *BASELINES], help=argparse.SUPPRESS)
    parser.add_argument("url", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        {"kite": serve_kite, "websockets": serve_websockets, "aiohttp": serve_aiohttp}[args.serve](
            args.uvloop
        )
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
        summary += run_loop(args, uvloop, workloads)
    print("ratios:")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
