"""Our kite server against the original Go kite's, with one and the same client.

Needs a Go kite server you built yourself (nothing of koding/kite is in this repository): a
program on ``github.com/koding/kite`` that serves a method ``square`` (x -> x*x, authentication
off) on 127.0.0.1, takes ``-port N`` (0: any free port) and prints the port it listens on as
the first line of its standard output. Its ``main`` is a dozen lines: ``kite.New``,
``Config.DisableAuthentication = true``, ``HandleFunc("square", ...)``, print ``k.Port()``
after ``<-k.ServerReadyNotify()``, ``k.Run()``.

Both servers are dialed by the same client: a Python kite (this checkout) in its own process,
over SockJS-websocket (the Go kite serves SockJS on ``/kite``; ours serves SockJS and raw
WebSocket there). Servers run on one core, the client on the other. Workloads, one connection:

- ``seq``: ``square`` calls one after another;
- ``conc64``: 64 calls in flight at all times.

For each server it prints calls/s and the server's CPU time per call (µs, from ``/proc``), the
medians of ``--repeat`` rounds taken in turns, and the ratios ours/Go (calls/s: above 1.0 ours
is faster; CPU: below 1.0 ours costs less). ``--uvloop`` runs our server on uvloop.
``--tree PATH`` adds our server from another checkout (its ``kitecore`` and plugins first on
``sys.path``), for before/after in the same run.

Without ``--go-server`` it measures our server alone (``bench/run.py`` runs it so).

    python bench/go_kite.py --go-server /path/to/go-kite [--calls 5000] [--repeat 5] [--uvloop]
                            [--tree /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ is not a package
from kontrol import tree_path
from rpc import cpu_seconds, serve_kite

CONCURRENCY = 64
WORKLOADS = ("seq", "conc64")


def client_main(url: str, workload: str, calls: int) -> None:
    """Child: one workload against ``url`` over SockJS-websocket; prints calls/s as JSON."""
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    async def main() -> None:
        kite = Kite("bench", "1.0.0", config=Config(), plugins=load_plugins(names=["sockjs"]))
        async with kite.new_client(url, transport="WebSocket") as client:
            for i in range(50):  # warm up
                await client.tell("square", i)
            start = time.perf_counter()
            if workload == "seq":
                made = calls
                for i in range(calls):
                    assert await client.tell("square", i) == i * i
            else:
                per_worker = calls // CONCURRENCY
                made = per_worker * CONCURRENCY

                async def worker() -> None:
                    for i in range(per_worker):
                        assert await client.tell("square", i) == i * i

                async with anyio.create_task_group() as group:
                    for _ in range(CONCURRENCY):
                        group.start_soon(worker)
            elapsed = time.perf_counter() - start
            print(json.dumps({"rate": made / elapsed, "calls": made}), flush=True)

    anyio.run(main)


def pinned(core: int) -> dict[str, Any]:
    """``Popen`` options running the child on CPU ``core`` when the machine has two or more."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return {}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, {core})}


class Server:
    """One server process (ours or Go's) and its figures."""

    def __init__(self, label: str, command: list[str], tree: str | None = None) -> None:
        self.label = label
        self.command = command
        self.env = dict(os.environ)
        if tree:  # its kitecore and plugins first
            self.env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [tree_path(tree), self.env.get("PYTHONPATH")])
            )
        self.rates: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        self.cpu_per_call: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True, env=self.env, **pinned(0)
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise SystemExit(f"{self.label}: expected a port on the first line, got {line!r}")
        self.url = f"http://127.0.0.1:{line}/kite"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def measure(self, workload: str, calls: int) -> None:
        assert self.process is not None
        before = cpu_seconds(self.process.pid)
        done = subprocess.run(
            [sys.executable, __file__, "--client", workload, "--calls", str(calls), self.url],
            capture_output=True,
            text=True,
            check=True,
            **pinned(1),
        )
        spent = cpu_seconds(self.process.pid) - before
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        self.rates[workload].append(figures["rate"])
        self.cpu_per_call[workload].append(spent / figures["calls"] * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--go-server", help="the Go kite server binary (see the docstring); none: ours only"
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true", help="run our server on uvloop")
    parser.add_argument("--tree", help="also our server from this checkout (before/after)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("url", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_kite(args.uvloop, ("websocket", "sockjs"))
        return
    if args.client:
        client_main(args.url, args.client, args.calls)
        return
    ours = [sys.executable, __file__, "--serve", *(["--uvloop"] if args.uvloop else [])]
    servers = [Server("kite", ours)]
    if args.go_server:
        servers.insert(0, Server("go", [args.go_server, "-port", "0"]))
    else:
        print("no --go-server given: our server only (see the docstring for the Go one)")
    if args.tree:
        servers.append(Server("kite-tree", ours, args.tree))
    for server in servers:
        server.start()
    try:
        for _ in range(args.repeat):
            for workload in WORKLOADS:
                for server in servers:
                    server.measure(workload, args.calls)
    finally:
        for server in servers:
            server.stop()
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"load average {os.getloadavg()[0]:.2f}; our server on {loop}; medians of {args.repeat}")
    print(f"{'server':10} {'workload':9} {'calls/s':>9} {'server CPU µs/call':>19}")
    for workload in WORKLOADS:
        for server in servers:
            rate = statistics.median(server.rates[workload])
            cpu = statistics.median(server.cpu_per_call[workload])
            print(f"{server.label:10} {workload:9} {rate:9.0f} {cpu:19.1f}")
    if not args.go_server:
        return
    go = servers[0]
    for server in servers[1:]:
        for workload in WORKLOADS:
            rate = statistics.median(server.rates[workload]) / statistics.median(go.rates[workload])
            cpu = statistics.median(server.cpu_per_call[workload]) / statistics.median(
                go.cpu_per_call[workload]
            )
            print(
                f"{server.label}/Go {workload}: calls/s {rate:.2f}x, server CPU per call {cpu:.2f}x"
            )


if __name__ == "__main__":
    main()
