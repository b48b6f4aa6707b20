"""Kontrol: registrations per second and getKites latency with 10,000 registered kites.

A real Kontrol (memory storage) runs in a subprocess, pinned to one core when the machine has
two or more (the client gets another). Then:

1. ``register``: 10,000 kites register over real RPC connections, ``--concurrency`` at a time.
   Kontrol binds a connection to the first kite that speaks on it, so each registration is a
   new WebSocket connection: dial, authenticate with a kite.key (``kiteKey``), ``register``,
   answer Kontrol's ``kite.heartbeat`` call, close. The kites belong to 10 users, each with its
   own kite.key (as the kites of one machine share its kite.key); 10 names x 100 instances each.
2. ``getKites``: sequential queries on one connection, after a warm-up: by id (matches 1 kite)
   and by username/environment/name (matches 100 kites). Latency is measured at the client,
   from the call to the decoded answer; p50 and p99 are printed for both.

Targets: getKites p99 < 10 ms at 10,000 kites, >= 1,000 registrations/s. Every phase is
bounded (``--deadline``); the query choice is seeded, so runs are reproducible.

    python bench/kontrol.py [--kites 10000] [--concurrency 32] [--queries 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

USERS = 10
NAMES = 10
ENVIRONMENT = "production"
KONTROL_USER = "bench-kontrol"
TARGET_P99_MS = 10.0
TARGET_REGISTRATIONS = 1000.0


# ---------------------------------------------------------------- server (subprocess)


def serve(data_dir: str) -> None:
    """Run a Kontrol with memory storage; print its port and its users' kite.keys (JSON)."""
    import json

    import anyio
    from kite_kontrol.server import Kontrol
    from kite_kontrol.settings import KontrolSettings

    from kitecore import Config
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, username=KONTROL_USER, environment=ENVIRONMENT)
    # registrations must outlive the benchmark: no expiry while the queries run
    settings = KontrolSettings(key_ttl=3600.0, update_interval=600.0)

    async def main() -> None:
        kontrol = Kontrol(
            storage="memory://",
            data_dir=data_dir,
            config=config,
            settings=settings,
            plugins=load_plugins(names=["websocket"]),
        )
        async with kontrol:
            keys = [kontrol.create_kite_key(f"user{u:02d}") for u in range(USERS)]
            print(json.dumps({"port": kontrol.kite.port, "keys": keys}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


def start_server(data_dir: str, cpu: int | None) -> tuple[subprocess.Popen[str], int, list[str]]:
    import json

    command = [sys.executable, __file__, "--serve", data_dir]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    assert process.stdout is not None
    hello = json.loads(process.stdout.readline())
    return process, int(hello["port"]), list(hello["keys"])


# ---------------------------------------------------------------- client


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (0.0 where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    kites: int
    register_seconds: float
    by_id_ms: list[float]
    by_name_ms: list[float]
    by_name_count: int
    server_cpu: float  # Kontrol's CPU seconds during the registrations
    client_cpu: float  # the client's CPU seconds during the registrations

    @property
    def registrations_per_second(self) -> float:
        return self.kites / self.register_seconds


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


async def run_client(
    port: int, keys: list[str], server_pid: int, args: argparse.Namespace
) -> Figures:
    import anyio

    from kitecore import Authentication, Config, Kite
    from kitecore.plugins import load_plugins

    url = f"http://127.0.0.1:{port}/kite"
    plugins = load_plugins(names=["websocket"])
    base = Config(ip="127.0.0.1", port=0, environment=ENVIRONMENT, timeout=30.0)

    kites: list[Kite] = []
    for i in range(args.kites):
        config = base.copy()
        config.apply_kite_key(keys[i % USERS])
        config.region = "bench"
        kite = Kite(f"name{(i // USERS) % NAMES:02d}", "1.0.0", config=config, plugins=plugins)
        kites.append(kite)

    # --- registrations ------------------------------------------------------------------
    todo = iter(enumerate(kites))

    async def register_worker() -> None:
        for i, kite in todo:
            auth = Authentication("kiteKey", kite.config.kite_key)
            async with kite.new_client(url, auth=auth) as client:
                await client.tell(
                    "register", {"url": f"http://10.1.{i // 250}.{i % 250}:4000/kite"}
                )

    started, server_cpu, client_cpu = (
        time.perf_counter(),
        cpu_seconds(server_pid),
        time.process_time(),
    )
    with anyio.fail_after(args.deadline):
        async with anyio.create_task_group() as group:
            for _ in range(args.concurrency):
                group.start_soon(register_worker)
    register_seconds = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu
    client_cpu = time.process_time() - client_cpu

    # --- getKites -----------------------------------------------------------------------
    rng = random.Random(args.seed)
    querier = kites[0]
    auth = Authentication("kiteKey", querier.config.kite_key)
    by_id: list[float] = []
    by_name: list[float] = []
    by_name_count = 0
    with anyio.fail_after(args.deadline):
        async with querier.new_client(url, auth=auth) as client:

            async def get(query: dict[str, str]) -> tuple[float, int]:
                t0 = time.perf_counter()
                answer = await client.tell("getKites", {"query": query})
                return (time.perf_counter() - t0) * 1000, len(answer["kites"])

            for _ in range(args.warmup):
                await get({"id": rng.choice(kites).id})
            for _ in range(args.queries):
                ms, count = await get({"id": rng.choice(kites).id})
                assert count == 1, count
                by_id.append(ms)
            for _ in range(args.warmup):
                await get({"username": "user00", "environment": ENVIRONMENT, "name": "name00"})
            for _ in range(max(1, args.queries // 4)):
                user, name = rng.randrange(USERS), rng.randrange(NAMES)
                query = {
                    "username": f"user{user:02d}",
                    "environment": ENVIRONMENT,
                    "name": f"name{name:02d}",
                }
                ms, by_name_count = await get(query)
                by_name.append(ms)
    return Figures(
        args.kites, register_seconds, by_id, by_name, by_name_count, server_cpu, client_cpu
    )


# ---------------------------------------------------------------- report


def report(figures: Figures, pinned: str) -> bool:
    """Print the summary; True when both targets are met."""
    rate = figures.registrations_per_second
    print(f"Kontrol, memory storage, {figures.kites} kites ({pinned})")
    ok = rate >= TARGET_REGISTRATIONS
    print(
        f"  register: {rate:8.0f} registrations/s   ({figures.register_seconds:.1f}s; "
        f"target >= {TARGET_REGISTRATIONS:.0f}/s)  {'OK' if ok else 'MISS'}"
    )
    seconds = figures.register_seconds
    print(
        f"            CPU busy during registration: Kontrol {figures.server_cpu / seconds:.0%}, "
        f"client {figures.client_cpu / seconds:.0%} (of one core each)"
    )
    rows = [("getKites by id", figures.by_id_ms, 1)]
    rows.append(("getKites user/env/name", figures.by_name_ms, figures.by_name_count))
    for label, samples, count in rows:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        verdict = "OK" if p99 < TARGET_P99_MS else "MISS"
        ok = ok and p99 < TARGET_P99_MS
        print(
            f"  {label:<24} ({count:>3} kites, {len(samples)} calls): "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  mean {statistics.fmean(samples):6.2f} ms  "
            f"(target p99 < {TARGET_P99_MS:g} ms)  {verdict}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kites", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent registrations")
    parser.add_argument("--queries", type=int, default=2000, help="getKites calls by id")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--serve", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.kites % (USERS * NAMES):
        parser.error(f"--kites must be a multiple of {USERS * NAMES}")

    import tempfile

    import anyio

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
        pinned = f"Kontrol pinned to CPU {server_cpu}, client on CPU {','.join(map(str, cpus[1:]))}"
    else:
        pinned = "one CPU, not pinned"
    with tempfile.TemporaryDirectory(prefix="kontrol-bench-") as data_dir:
        process, port, keys = start_server(data_dir, server_cpu)
        try:
            figures = anyio.run(run_client, port, keys, process.pid, args)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    met = report(figures, pinned)
    print("targets met" if met else "targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
