"""Shared driver for benchmarks that compare kite set-ups on ``square`` calls/s.

Each set-up ("mode") is a server process and a client process of its own, so set-ups that
install interceptors or plugins cannot leak into each other; a ``tree`` option puts another
checkout's ``kitecore`` first on ``sys.path`` (to measure against an older commit). The parent
process runs the rounds, alternating between set-ups, and takes medians. The server runs on
one CPU and the clients on another when there are two or more.

A mode is a function ``setup(kite, side)`` (``side`` is ``"server"`` or ``"client"``) called
on each kite before it serves or calls, plus the plugin names to load.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CONCURRENCY = 64


@dataclass
class Setup:
    """One measured set-up: its label, mode name and optional source tree."""

    label: str
    mode: str
    tree: str | None = None
    rates: dict[str, list[float]] = field(default_factory=dict)


def _prepare(tree: str | None) -> None:
    if tree:
        sys.path.insert(0, tree)


def _new_kite(name: str, modes: dict[str, Any], mode: str, side: str) -> Any:
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    plugin_names, setup = modes[mode]
    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    kite = Kite(name, "1.0.0", config=config, plugins=load_plugins(names=plugin_names))
    setup(kite, side)
    return kite


def serve(modes: dict[str, Any], mode: str) -> None:
    """Child: serve ``square`` and print the port."""
    import anyio

    kite = _new_kite("square", modes, mode, "server")

    @kite.handle("square")
    async def square(r):  # type: ignore[no-untyped-def]
        a = r.args.one()
        return a * a

    async def main() -> None:
        async with kite:
            print(kite.port, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


def client(modes: dict[str, Any], mode: str, url: str) -> None:
    """Child: for each line ``workload n`` on stdin, print the calls/s it measured."""
    import anyio

    kite = _new_kite("bench", modes, mode, "client")

    async def main() -> None:
        async with kite, kite.new_client(url) as c:
            await c.tell("square", 1)
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    return
                workload, n = line.split()
                count = int(n)
                start = time.perf_counter()
                if workload == "seq":
                    for i in range(count):
                        await c.tell("square", i)
                else:
                    per_task = count // CONCURRENCY
                    count = per_task * CONCURRENCY

                    async def worker() -> None:
                        for i in range(per_task):
                            await c.tell("square", i)

                    async with anyio.create_task_group() as group:
                        for _ in range(CONCURRENCY):
                            group.start_soon(worker)
                print(json.dumps(count / (time.perf_counter() - start)), flush=True)

    anyio.run(main)


def child_main(modes: dict[str, Any]) -> bool:
    """Run as a child if the command line says so; True if it did."""
    if len(sys.argv) < 4 or sys.argv[1] not in ("--serve", "--client"):
        return False
    role, mode, tree = sys.argv[1], sys.argv[2], sys.argv[3]
    _prepare(tree if tree != "-" else None)
    if role == "--serve":
        serve(modes, mode)
    else:
        client(modes, mode, sys.argv[4])
    return True


def run(
    script: str,
    setups: list[Setup],
    workloads: list[tuple[str, int]],
    repeat: int,
    between_rounds: Callable[[Setup, str], None] | None = None,
) -> tuple[int | None, int | None]:
    """Measure every set-up on every workload ``repeat`` times, alternating set-ups.

    Returns (server cpu, client cpu). ``between_rounds(setup, url)`` runs after each round
    (e.g. to scrape metrics).
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) >= 2 else None
    client_cpu = cpus[1] if len(cpus) >= 2 else None
    processes: list[subprocess.Popen[str]] = []
    clients: dict[str, tuple[subprocess.Popen[str], str]] = {}
    try:
        for setup in setups:
            tree = setup.tree or "-"
            server = subprocess.Popen(
                [sys.executable, script, "--serve", setup.mode, tree],
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(server)
            if server_cpu is not None:
                os.sched_setaffinity(server.pid, {server_cpu})
            assert server.stdout is not None
            url = f"ws://127.0.0.1:{int(server.stdout.readline())}/kite"
            child = subprocess.Popen(
                [sys.executable, script, "--client", setup.mode, tree, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(child)
            if client_cpu is not None:
                os.sched_setaffinity(child.pid, {client_cpu})
            clients[setup.label] = (child, url)
        for workload, n in workloads:
            for _ in range(repeat):
                for setup in setups:
                    child, url = clients[setup.label]
                    assert child.stdin is not None and child.stdout is not None
                    child.stdin.write(f"{workload} {n}\n")
                    child.stdin.flush()
                    rate = float(child.stdout.readline())
                    setup.rates.setdefault(workload, []).append(rate)
                    if between_rounds is not None:
                        between_rounds(setup, url)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            process.wait()
    return server_cpu, client_cpu


def median(setup: Setup, workload: str) -> float:
    return statistics.median(setup.rates[workload])
