"""RPC throughput: Kite over raw WebSocket against bare JSON-RPC over ``websockets``.

Three workloads, each on one connection to a server in another process:

- ``seq``: ``square`` calls one after another;
- ``conc64``: 64 calls in flight at all times;
- ``connect``: connect, one call, close, repeated.

The baseline is the same workload as bare JSON-RPC (``{id, method, params}`` ->
``{id, result}``) with the ``websockets`` library on both ends. Each figure is the median
of ``--repeat`` rounds, kite and baseline alternating. Server and client are pinned to
different cores when the machine has two or more. The last line gives the ratios
(kite / websockets; above 1.0 means Kite is faster).

    python bench/rpc.py [--calls 5000] [--connects 500] [--repeat 5] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

CONCURRENCY = 64


# ---------------------------------------------------------------- servers


def serve_kite(uvloop: bool) -> None:
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    kite = Kite("square", "1.0.0", config=config, plugins=load_plugins(names=["websocket"]))

    @kite.handle("square")
    async def square(r):  # type: ignore[no-untyped-def]
        a = r.args.one()
        return a * a

    async def main() -> None:
        async with kite:
            print(kite.port, flush=True)
            await anyio.sleep_forever()

    anyio.run(main, backend_options={"use_uvloop": uvloop})


def serve_jsonrpc(uvloop: bool) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
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


def _run(coro: Awaitable[None], uvloop: bool) -> None:
    if uvloop:
        import uvloop as _uvloop

        _uvloop.run(coro)  # type: ignore[arg-type]
    else:
        asyncio.run(coro)  # type: ignore[arg-type]


# ---------------------------------------------------------------- clients

Workload = Callable[[str, int], Awaitable[float]]


async def kite_seq(url: str, n: int) -> float:
    client_kite = _client_kite()
    async with client_kite.new_client(url) as client:
        await client.tell("square", 1)
        start = time.perf_counter()
        for i in range(n):
            await client.tell("square", i)
        return n / (time.perf_counter() - start)


async def kite_conc(url: str, n: int) -> float:
    client_kite = _client_kite()
    async with client_kite.new_client(url) as client:
        await client.tell("square", 1)
        per_task = n // CONCURRENCY

        async def worker() -> None:
            for i in range(per_task):
                await client.tell("square", i)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return per_task * CONCURRENCY / (time.perf_counter() - start)


async def kite_connect(url: str, n: int) -> float:
    client_kite = _client_kite()
    start = time.perf_counter()
    for i in range(n):
        async with client_kite.new_client(url) as client:
            await client.tell("square", i)
    return n / (time.perf_counter() - start)


_KITE = None


def _client_kite():  # type: ignore[no-untyped-def]
    global _KITE
    if _KITE is None:
        from kitecore import Config, Kite
        from kitecore.plugins import load_plugins

        _KITE = Kite("bench", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
    return _KITE


class JSONRPCClient:
    """A minimal, natural JSON-RPC client: one reader task resolving futures by id."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws
        self.ids = itertools.count()
        self.waiting: dict[int, asyncio.Future[object]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            reply = json.loads(text)
            self.waiting.pop(reply["id"]).set_result(reply["result"])

    async def call(self, method: str, *params: object) -> object:
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        await self.ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        return await future

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


async def _jsonrpc(url: str) -> JSONRPCClient:
    from websockets.asyncio.client import connect

    return JSONRPCClient(await connect(url, compression=None))


async def ws_seq(url: str, n: int) -> float:
    client = await _jsonrpc(url)
    await client.call("square", 1)
    start = time.perf_counter()
    for i in range(n):
        await client.call("square", i)
    rate = n / (time.perf_counter() - start)
    await client.close()
    return rate


async def ws_conc(url: str, n: int) -> float:
    client = await _jsonrpc(url)
    await client.call("square", 1)
    per_task = n // CONCURRENCY

    async def worker() -> None:
        for i in range(per_task):
            await client.call("square", i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    rate = per_task * CONCURRENCY / (time.perf_counter() - start)
    await client.close()
    return rate


async def ws_connect(url: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        client = await _jsonrpc(url)
        await client.call("square", i)
        await client.close()
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------- driver


def start_server(kind: str, uvloop: bool, cpu: int | None) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, __file__, "--serve", kind]
    if uvloop:
        command.append("--uvloop")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true", help="uvloop on both sides")
    parser.add_argument("--serve", choices=["kite", "jsonrpc"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "kite":
        serve_kite(args.uvloop)
        return
    if args.serve == "jsonrpc":
        serve_jsonrpc(args.uvloop)
        return

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) >= 2 else None
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[1]})
    kite_server, kite_port = start_server("kite", args.uvloop, server_cpu)
    ws_server, ws_port = start_server("jsonrpc", args.uvloop, server_cpu)
    kite_url = f"ws://127.0.0.1:{kite_port}/kite"
    ws_url = f"ws://127.0.0.1:{ws_port}/"
    workloads: list[tuple[str, Workload, Workload, int]] = [
        ("seq", kite_seq, ws_seq, args.calls),
        ("conc64", kite_conc, ws_conc, args.calls * 2),
        ("connect", kite_connect, ws_connect, args.connects),
    ]
    results: dict[str, tuple[list[float], list[float]]] = {}

    async def measure() -> None:
        for name, kite_run, ws_run, n in workloads:
            kite_rates: list[float] = []
            ws_rates: list[float] = []
            for _ in range(args.repeat):
                kite_rates.append(await kite_run(kite_url, n))
                ws_rates.append(await ws_run(ws_url, n))
            results[name] = (kite_rates, ws_rates)

    try:
        _run(measure(), args.uvloop)
    finally:
        for process in (kite_server, ws_server):
            process.terminate()
            process.wait()

    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(
        f"event loop: {loop_name}; medians of {args.repeat} rounds; "
        f"server cpu {server_cpu}, client cpu {cpus[1] if len(cpus) >= 2 else None}"
    )
    ratios = []
    for name, (kite_rates, ws_rates) in results.items():
        k, w = statistics.median(kite_rates), statistics.median(ws_rates)
        unit = "connections/s" if name == "connect" else "calls/s"
        print(f"{name:8s} kite {k:10.0f} {unit}   websockets {w:10.0f} {unit}   ratio {k / w:.2f}")
        ratios.append(f"{name}={k / w:.2f}")
    print("kite/websockets ratios: " + " ".join(ratios))


if __name__ == "__main__":
    main()
