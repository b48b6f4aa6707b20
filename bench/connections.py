"""Many idle connections: server memory per connection, connect rate, a fresh caller's latency.

A kite (raw WebSocket, authentication off) runs in another process. The bench opens ``-n``
WebSocket connections to it that upgrade and then stay silent, as a crowd of idle peers
would, and reports:

- the server's resident memory before, with the connections open (per connection), and
  after they are closed (against the baseline; read once the server's release after a
  crowd, two steps over some 3.5 s, is done: at least :data:`AFTER_CLOSE_WAIT` seconds
  after the last close, and steady for 1.5 s);
- the connect rate (TCP connect + upgrade, ``--parallel`` at a time);
- ``square`` latency for a fresh client at that count: connect + first call, then the median
  and 99th percentile of ``--calls`` calls.

Both processes raise their descriptor limit to the hard limit (``resource.setrlimit``).

    python bench/connections.py [-n 10000] [--parallel 200] [--calls 500] [--repeat 1]
                                [--loop asyncio|uvloop|trio] [--tree /path/to/other/checkout]
                                [--malloc pymalloc|malloc]

``--loop`` picks the server's event loop; ``--tree`` runs the server on Kite from another
checkout (for before/after comparisons: the same bench, the same client); ``--malloc malloc``
runs the server with ``PYTHONMALLOC=malloc`` (see docs/limits.md: memory after a crowd).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft descriptor limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


# ---------------------------------------------------------------- server


def serve(fd_limit: int, loop: str) -> None:
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    raise_fd_limit(fd_limit)
    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    config.max_connections = 0  # only the descriptor bound
    kite = Kite("crowd", "1.0.0", config=config, plugins=load_plugins(names=["websocket"]))

    @kite.handle("square")
    async def square(r):  # type: ignore[no-untyped-def]
        a = r.args.one()
        return a * a

    async def main() -> None:
        async with kite:
            print(kite.port, flush=True)
            await anyio.sleep_forever()

    if loop == "uvloop":
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(main, backend=loop)


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")


def open_fds(pid: int) -> int:
    """How many descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------- client

#: Seconds from the last close to the "after closing" reading, at least: the server's
#: release after a crowd takes two steps, the second past its close timeout (2 s) + 1 s.
AFTER_CLOSE_WAIT = 4.0

UPGRADE = (
    "GET /kite HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
)


async def open_idle(port: int) -> asyncio.StreamWriter:
    """One upgraded connection that will send nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(UPGRADE.format(key=key).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {head[:40]!r}")
    return writer


async def open_many(port: int, n: int, parallel: int) -> tuple[list[asyncio.StreamWriter], float]:
    writers: list[asyncio.StreamWriter] = []
    limit = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with limit:
            writers.append(await open_idle(port))

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return writers, n / (time.perf_counter() - start)


async def fresh_caller(url: str, calls: int) -> tuple[float, list[float]]:
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    kite = Kite("bench", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
    start = time.perf_counter()
    async with kite.new_client(url) as client:
        await client.tell("square", 2)
        first = time.perf_counter() - start
        latencies = []
        for i in range(calls):
            t = time.perf_counter()
            await client.tell("square", i)
            latencies.append(time.perf_counter() - t)
    return first, latencies


async def settle(pid: int, timeout: float = 20.0, at_least: float = 0.0) -> int:
    """The server's RSS once it has not changed for 1.5 s (closes take a while), and no
    sooner than ``at_least`` seconds from now."""
    start = time.monotonic()
    deadline = start + timeout
    last = rss(pid)
    stable = 0
    while time.monotonic() < deadline and (stable < 3 or time.monotonic() - start < at_least):
        await asyncio.sleep(0.5)
        now = rss(pid)
        stable = stable + 1 if abs(now - last) < 64 * 1024 else 0
        last = now
    return last


async def round_(pid: int, port: int, args: argparse.Namespace) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/kite"
    await fresh_caller(url, 10)  # warm up: first-call allocations are not per connection
    baseline = await settle(pid)
    baseline_fds = open_fds(pid)
    writers, rate = await open_many(port, args.n, args.parallel)
    loaded = await settle(pid)
    first, latencies = await fresh_caller(url, args.calls)
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    deadline = time.monotonic() + 60
    # the server is still closing its side while it holds more descriptors (another
    # process: nothing to wait on but /proc)
    while open_fds(pid) > baseline_fds + 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    # the server gives memory back in two steps, the second after its close timeout (2 s)
    # and a second more (docs/limits.md): measured once both are done
    after = await settle(pid, at_least=AFTER_CLOSE_WAIT)
    latencies.sort()
    return {
        "baseline": baseline,
        "loaded": loaded,
        "after": after,
        "per_conn": (loaded - baseline) / args.n,
        "rate": rate,
        "first": first,
        "median": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="idle connections")
    parser.add_argument("--parallel", type=int, default=200, help="connects in flight")
    parser.add_argument("--calls", type=int, default=500, help="calls of the fresh caller")
    parser.add_argument("--repeat", type=int, default=1, help="rounds on the same server")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop", "trio"), default="asyncio", help="server loop"
    )
    parser.add_argument("--tree", help="run the server on Kite from this checkout")
    parser.add_argument(
        "--malloc",
        choices=("pymalloc", "malloc"),
        default="pymalloc",
        help="the server's allocator for small objects (PYTHONMALLOC)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.loop)
        return

    wanted = args.n + 1024
    got = raise_fd_limit(wanted)
    if got < wanted:
        sys.exit(f"need {wanted} descriptors, the hard limit allows {got}")
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    if args.malloc == "malloc":
        env["PYTHONMALLOC"] = "malloc"
    if args.tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.tree, env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(wanted), "--loop", args.loop],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(
            f"server on {args.loop}, {args.malloc}"
            + (f", Kite from {args.tree}" if args.tree else "")
        )
        for i in range(args.repeat):
            r = asyncio.run(round_(server.pid, port, args))
            mib = 2**20
            print(
                f"round {i + 1}: {args.n} idle connections: "
                f"server RSS {r['baseline'] / mib:.1f} -> {r['loaded'] / mib:.1f} MiB "
                f"({r['per_conn'] / 1024:.1f} KiB per connection), "
                f"after closing {r['after'] / mib:.1f} MiB "
                f"({(r['after'] - r['baseline']) / r['baseline'] * 100:+.1f} % of baseline); "
                f"connect rate {r['rate']:.0f}/s; fresh caller: connect + first call "
                f"{r['first'] * 1e3:.1f} ms, square median {r['median'] * 1e6:.0f} us, "
                f"p99 {r['p99'] * 1e6:.0f} us"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
