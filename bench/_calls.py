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
    #: Calls per CPU-second of server and client together (robust on a busy machine).
    cpu_rates: dict[str, list[float]] = field(default_factory=dict)
    #: CPU µs per call of the server and of the client process, each round.
    server_us: dict[str, list[float]] = field(default_factory=dict)
    client_us: dict[str, list[float]] = field(default_factory=dict)


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
                cpu_start = time.process_time()
                start = time.perf_counter()
                if workload == "seq":
                    for i in range(count):
                        await c.tell("square", i)
                else:
                    per_task = count // CONCURRENCY
                    count = per_task * CONCURRENCY

                    async def worker(calls: int) -> None:
                        for i in range(calls):
                            await c.tell("square", i)

                    async with anyio.create_task_group() as group:
                        for _ in range(CONCURRENCY):
                            group.start_soon(worker, per_task)
                wall = time.perf_counter() - start
                cpu = time.process_time() - cpu_start
                print(json.dumps([count, wall, cpu]), flush=True)

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
    servers: dict[str, int] = {}
    try:
        for setup in setups:
            tree = setup.tree or "-"
            server = subprocess.Popen(
                [sys.executable, script, "--serve", setup.mode, tree],
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(server)
            servers[setup.label] = server.pid
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
                    server_cpu_before = _cpu_seconds(servers[setup.label])
                    child.stdin.write(f"{workload} {n}\n")
                    child.stdin.flush()
                    count, wall, cpu = json.loads(child.stdout.readline())
                    server_seconds = _cpu_seconds(servers[setup.label]) - server_cpu_before
                    setup.server_us.setdefault(workload, []).append(server_seconds / count * 1e6)
                    setup.client_us.setdefault(workload, []).append(cpu / count * 1e6)
                    cpu += server_seconds
                    setup.rates.setdefault(workload, []).append(count / wall)
                    setup.cpu_rates.setdefault(workload, []).append(count / cpu)
                    if between_rounds is not None:
                        between_rounds(setup, url)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            process.wait()
    return server_cpu, client_cpu


def median(setup: Setup, workload: str, cpu: bool = False) -> float:
    """Median calls/s (``cpu``: calls per CPU-second) of ``setup`` on ``workload``."""
    return statistics.median((setup.cpu_rates if cpu else setup.rates)[workload])


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a child process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    setups: list[Setup],
    workloads: list[tuple[str, int]],
    ratios: list[tuple[str, str]],
    repeat: int,
    cpus: tuple[int | None, int | None],
) -> None:
    """Print the medians and the ratios ``(a, b)`` = a/b, by wall clock and by CPU time."""
    print(f"medians of {repeat} rounds; server cpu {cpus[0]}, client cpu {cpus[1]}")
    by_label = {setup.label: setup for setup in setups}
    for workload, _ in workloads:
        for cpu in (False, True):
            unit = "calls/CPU-s" if cpu else "calls/s"
            cells = "  ".join(
                f"{setup.label} {median(setup, workload, cpu):8.0f}" for setup in setups
            )
            print(f"{workload:7s} {unit:12s} {cells}")
        cells = "  ".join(
            f"{setup.label} {statistics.median(setup.server_us[workload]):5.1f}"
            f"+{statistics.median(setup.client_us[workload]):5.1f}"
            for setup in setups
        )
        print(f"{workload:7s} {'CPU µs/call':12s} {cells}  (server+client)")
    for cpu in (False, True):
        parts = []
        for workload, _ in workloads:
            for a, b in ratios:
                value = median(by_label[a], workload, cpu) / median(by_label[b], workload, cpu)
                parts.append(f"{workload} {a}/{b}={value:.3f}")
        kind = "by CPU time" if cpu else "by wall clock"
        print(f"ratios {kind}: " + " ".join(parts))


async def square_calls_per_second(client: Any, calls: int, concurrency: int) -> float:
    """Calls/s of ``calls`` ``square`` calls on an open ``client``, ``concurrency`` in flight
    (after one warm-up call, not counted). For benchmarks that measure in-process."""
    import anyio

    await client.tell("square", 2)
    per_worker = calls // concurrency

    async def worker() -> None:
        for i in range(per_worker):
            await client.tell("square", i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = time.perf_counter() - start
    return per_worker * concurrency / elapsed
