"""Pool overhead: calls through ``kite.pool(query)`` against direct client calls.

A server process runs Kontrol (memory storage) and ``--kites`` kites serving ``square``, all
registered and with token authentication on. The client process finds them through Kontrol
and runs the same workload twice:

- direct: the clients ``get_kites`` returned, dialed once and taken in turn;
- pool: ``kite.pool(query, picker=--picker)`` over the same kites.

Workloads: ``seq`` (calls one after another) and ``conc64`` (64 calls in flight). Each figure is
the median of ``--repeat`` rounds, each round direct, pool, pool, direct (so drift in the
machine's speed cancels out). The cost ratio is the median over the rounds of pool time /
direct time (the issue's target: at most 1.10), for wall time and for the client process's
CPU time (less sensitive to other load on the machine). Server and client are pinned to different
cores when there are two or more.

    python bench/pool.py [--kites 5] [--calls 5000] [--repeat 5] [--picker round_robin]
                         [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

CONCURRENCY = 64
OWNER = "bench"


def serve(kites: int) -> None:
    """The server process: Kontrol and ``kites`` kites; prints what the client needs."""
    import contextlib

    import anyio
    from kite_kontrol.server import Kontrol

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    plugins = load_plugins(names=["websocket", "token", "memory"])

    async def square(r: Any) -> Any:
        a = r.args.one()
        return a * a

    async def main() -> None:
        config = Config(ip="127.0.0.1", port=0, username="kontrol")
        async with contextlib.AsyncExitStack() as stack:
            kontrol = await stack.enter_async_context(
                Kontrol(storage="memory://", config=config, plugins=plugins)
            )
            for _ in range(kites):
                kite_config = Config(ip="127.0.0.1", port=0, environment="bench")
                kite_config.apply_kite_key(kontrol.create_kite_key(OWNER))
                kite = Kite("square", "1.0.0", config=kite_config, plugins=plugins)
                kite.handle("square", square)
                await stack.enter_async_context(kite)
                await kite.register()
            print(json.dumps({"kite_key": kontrol.create_kite_key("client")}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


async def direct_seq(clients: list[Any], n: int) -> None:
    count = len(clients)
    for i in range(n):
        await clients[i % count].tell("square", i)


async def pool_seq(pool: Any, n: int) -> None:
    for i in range(n):
        await pool.tell("square", i)


async def concurrently(call: Callable[[int], Awaitable[Any]], n: int) -> None:
    import anyio

    per_worker = n // CONCURRENCY

    async def worker(offset: int) -> None:
        for i in range(offset, offset + per_worker):
            await call(i)

    async with anyio.create_task_group() as group:
        for w in range(CONCURRENCY):
            group.start_soon(worker, w * per_worker)


async def timed(run: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    return time.perf_counter() - wall, time.process_time() - cpu


Figures = dict[str, float]


async def compare(
    direct: Callable[[], Awaitable[None]], pooled: Callable[[], Awaitable[None]], repeat: int
) -> Figures:
    """Medians over ``repeat`` rounds of direct, pool, pool, direct (drift cancels out)."""
    await direct()  # warm up both paths (connections, caches)
    await pooled()
    rounds: dict[str, list[float]] = {}
    for _ in range(repeat):
        d1, p1, p2, d2 = [await timed(f) for f in (direct, pooled, pooled, direct)]
        figures = {
            "direct_wall": (d1[0] + d2[0]) / 2,
            "pool_wall": (p1[0] + p2[0]) / 2,
            "direct_cpu": (d1[1] + d2[1]) / 2,
            "pool_cpu": (p1[1] + p2[1]) / 2,
        }
        figures["wall_ratio"] = figures["pool_wall"] / figures["direct_wall"]
        figures["cpu_ratio"] = figures["pool_cpu"] / figures["direct_cpu"]
        for key, value in figures.items():
            rounds.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in rounds.items()}


async def measure(args: argparse.Namespace, kite_key: str) -> dict[str, Figures]:
    """The figures of each workload."""
    import itertools

    from kitecore import Config, Kite, Query
    from kitecore.plugins import load_plugins

    plugins = load_plugins(names=["websocket", "token", "pickers"])
    config = Config(ip="127.0.0.1", port=0, timeout=30.0)
    config.apply_kite_key(kite_key)
    kite = Kite("bench-client", "1.0.0", config=config, plugins=plugins)
    query = Query(username=OWNER, environment="bench", name="square")
    async with kite:
        clients = await kite.get_kites(query)
        for client in clients:
            await client.dial()
        turn = itertools.count()
        count = len(clients)
        n = args.calls
        async with kite.pool(query, picker=args.picker) as pool:
            results = {
                "seq": await compare(
                    lambda: direct_seq(clients, n), lambda: pool_seq(pool, n), args.repeat
                ),
                "conc64": await compare(
                    lambda: concurrently(
                        lambda i: clients[next(turn) % count].tell("square", i), n
                    ),
                    lambda: concurrently(lambda i: pool.tell("square", i), n),
                    args.repeat,
                ),
            }
        for client in clients:
            await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kites", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--picker", default="round_robin")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import anyio

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.kites)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if len(cpus) >= 2:
            os.sched_setaffinity(server.pid, {cpus[0]})
            os.sched_setaffinity(0, {cpus[1]})
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the server process failed to start")
        kite_key = json.loads(line)["kite_key"]
        results = anyio.run(measure, args, kite_key, backend=args.backend)
    finally:
        server.terminate()
        server.wait(10)

    print(
        f"pool vs direct: {args.kites} kite(s), picker {args.picker}, {args.calls} calls, "
        f"median of {args.repeat}, {args.backend}"
    )
    n = args.calls
    for name, f in results.items():
        print(
            f"  {name:7s} direct {n / f['direct_wall']:6.0f} calls/s "
            f"({f['direct_wall'] * 1e6 / n:.1f} us/call, client CPU "
            f"{f['direct_cpu'] * 1e6 / n:.1f} us/call)   pool {n / f['pool_wall']:6.0f} calls/s "
            f"({f['pool_wall'] * 1e6 / n:.1f} us/call, client CPU "
            f"{f['pool_cpu'] * 1e6 / n:.1f} us/call)"
        )
        for kind in ("wall", "cpu"):
            ratio = f[f"{kind}_ratio"]
            verdict = "ok" if ratio <= 1.10 else "over the 1.10 target"
            print(f"          pool/direct {kind:4s} ratio {ratio:.3f} ({verdict})")


if __name__ == "__main__":
    main()
