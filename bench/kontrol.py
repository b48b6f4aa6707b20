"""Kontrol: registrations per second, getKites latency, and the watch event path.

A real Kontrol runs in a subprocess on ``--storage memory|etcd|postgres`` (etcd and PostgreSQL
are started here on loopback, as the tests start them: an etcd member in a temporary
directory, a throw-away PostgreSQL as ``bench/_postgres_server.py`` starts it), pinned with its
storage server to one core when the machine has two or more (the client gets another), as the
issue's comparison with Go's Kontrol was measured. Then:

1. ``register``: 2,000 kites register over real RPC connections, ``--concurrency`` (32) at a
   time, after one ``getKites`` (so that the etcd storage's query cache, and the etcd watch
   feeding it, run during the registrations, as in a Kontrol that serves queries). Kontrol
   binds a connection to the first kite that speaks on it, so each registration is a new
   WebSocket connection: dial, authenticate with a kite.key (``kiteKey``),
   ``register``, close (Kontrol's ``kite.heartbeat`` call is fire-and-log: ``register`` is
   answered without waiting for it). Besides the rate, the CPU time per registration (user +
   system, from ``/proc``) of Kontrol, of its storage server (etcd, or PostgreSQL's postmaster
   and backends) and of the client is printed: on a shared machine it is steadier than the
   wall-clock rate. The kites belong to 10 users, each with its
   own kite.key (as the kites of one machine share its kite.key); 10 names x 100 instances each.
2. ``getKites``: sequential queries on one connection, after a warm-up: by id (matches 1 kite)
   and by username/environment/name (matches 100 kites). Latency is measured at the client,
   from the call to the decoded answer; p50 and p99 are printed for both.

The issue measures Kontrol, not our client: with ``--client lean`` (the default) the kites and
the querier speak the wire directly (``bench/_lean_register.py``: pre-built frames, every answer
checked, Kontrol's ``kite.heartbeat`` answered), at about a third of the full client's CPU per
registration; ``--client full`` uses kitecore's ``Kite`` client. ``--tree PATH`` runs a second
Kontrol from another checkout (its kitecore and plugins) in every run, for before/after
figures side by side with their ratios.

3. ``events`` (``--watchers N``, default 1,000; 0 skips it): N watchers (``getKites`` with a
   ``watchHandler``) on 20 connections, each watching one of 100 names (so 10 watchers per
   name), then ``--event-kites`` kites of those names register one after another over RPC. For
   every event the time from the kite's ``register`` returning to the event arriving at the
   watcher is recorded (an event can even arrive before the answer: Kontrol announces the
   kite as soon as it is stored); p50/p99 over every arrival are printed and compared with the
   pool's polling, which this path replaces (``Pool(refresh_interval=30)``: a new kite is seen
   15 s later on average, 30 s at worst).

Targets: >= 1,000 registrations/s on etcd and PostgreSQL, >= 2,000/s on memory; getKites by id
p50 <= 0.5 ms on etcd, p99 < 10 ms (at 10,000 kites: ``--kites 10000``); event p99 < 50 ms on
memory, < 200 ms on etcd and PostgreSQL. Every phase is bounded (``--deadline``); the query
choice is seeded, so runs are reproducible. ``--runs N`` repeats everything N times (fresh
storage and Kontrol each time) and prints the medians; ``--json`` adds one JSON line per run
for comparisons between checkouts.

    python bench/kontrol.py [--storage memory] [--kites 2000] [--concurrency 32] [--runs 3]
                            [--queries 2000] [--watchers 1000] [--event-kites 200] [--seed 1]
                            [--client lean|full] [--tree /path/to/baseline/checkout]
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
#: Registrations per second, per storage.
TARGET_REGISTRATIONS = {"memory": 2000.0, "etcd": 1000.0, "postgres": 1000.0}
#: getKites p50 for one kite (ms), per storage.
TARGET_BY_ID_P50_MS = {"memory": 0.5, "etcd": 0.5, "postgres": 0.5}
#: Event path targets (p99, ms) per storage.
TARGET_EVENT_P99_MS = {"memory": 50.0, "etcd": 200.0, "postgres": 200.0}
#: The pool's default polling interval, which watches replace (seconds).
POOL_REFRESH_INTERVAL = 30.0
WATCH_CONNECTIONS = 20
WATCH_NAMES = 100
PLUGINS = {
    "memory": ["websocket"],
    "etcd": ["websocket", "etcd"],
    "postgres": ["websocket", "postgres"],
}


# ---------------------------------------------------------------- server (subprocess)


def serve(data_dir: str, storage_url: str) -> None:
    """Run a Kontrol on ``storage_url``; print its port and its users' kite.keys (JSON)."""
    import json

    import anyio
    from kite_kontrol.server import Kontrol
    from kite_kontrol.settings import KontrolSettings

    from kitecore import Config
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, username=KONTROL_USER, environment=ENVIRONMENT)
    # registrations must outlive the benchmark: no expiry while the queries run, and no
    # removal when a registering connection closes (each registration uses its own)
    settings = KontrolSettings(
        key_ttl=3600.0, update_interval=600.0, deregister_on_disconnect=False
    )

    async def main() -> None:
        scheme = storage_url.split(":", 1)[0]
        kontrol = Kontrol(
            storage=storage_url,
            data_dir=data_dir,
            config=config,
            settings=settings,
            plugins=load_plugins(names=PLUGINS[scheme]),
        )
        async with kontrol:
            keys = [kontrol.create_kite_key(f"user{u:02d}") for u in range(USERS)]
            print(json.dumps({"port": kontrol.kite.port, "keys": keys}), flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


def tree_path(tree: str) -> str:
    """``PYTHONPATH`` that runs the kitecore and plugins of checkout ``tree``."""
    plugins = os.path.join(tree, "plugins")
    sources = [os.path.join(plugins, name, "src") for name in sorted(os.listdir(plugins))]
    return os.pathsep.join([tree, *(path for path in sources if os.path.isdir(path))])


def start_server(
    data_dir: str, storage_url: str, cpu: int | None, tree: str | None = None
) -> tuple[subprocess.Popen[str], int, list[str]]:
    import json

    command = [sys.executable, __file__, "--serve", data_dir, "--storage-url", storage_url]
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree_path(tree), env.get("PYTHONPATH")]))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
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


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of ``pids`` and their live children (PostgreSQL's backends)."""
    children: list[int] = []
    if pids:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid in pids:
                    children.append(int(entry))
    return sum(cpu_seconds(pid) for pid in [*pids, *children])


@dataclass
class Figures:
    storage: str
    kites: int
    register_seconds: float
    by_id_ms: list[float]
    by_name_ms: list[float]
    by_name_count: int
    server_cpu: float  # Kontrol's CPU seconds during the registrations
    client_cpu: float  # the client's CPU seconds during the registrations
    event_ms: list[float]  # register returned -> event arrived, every arrival
    sent_ms: list[float]  # register sent -> event arrived, every arrival
    early_events: int  # arrivals before the register answer
    watchers: int
    event_kites: int
    label: str = "this checkout"
    storage_cpu: float = 0.0  # the storage server's CPU seconds during the registrations

    @property
    def registrations_per_second(self) -> float:
        return self.kites / self.register_seconds

    @property
    def server_cpu_us(self) -> float:
        """Kontrol's CPU microseconds per registration."""
        return self.server_cpu / self.kites * 1e6

    @property
    def storage_cpu_us(self) -> float:
        """The storage server's CPU microseconds per registration."""
        return self.storage_cpu / self.kites * 1e6

    @property
    def client_cpu_us(self) -> float:
        """The client's CPU microseconds per registration."""
        return self.client_cpu / self.kites * 1e6

    def summary(self) -> dict[str, float | str | int]:
        """The headline figures of this run (one JSON line with ``--json``)."""
        row: dict[str, float | str | int] = {
            "storage": self.storage,
            "kites": self.kites,
            "reg_per_s": round(self.registrations_per_second, 1),
            "kontrol_cpu_us_per_reg": round(self.server_cpu_us, 1),
            "storage_cpu_us_per_reg": round(self.storage_cpu_us, 1),
            "server_core_us_per_reg": round(self.server_cpu_us + self.storage_cpu_us, 1),
            "client_cpu_us_per_reg": round(self.client_cpu_us, 1),
            "by_id_p50_ms": round(percentile(self.by_id_ms, 50), 3),
            "by_id_p99_ms": round(percentile(self.by_id_ms, 99), 3),
            "by_name_p50_ms": round(percentile(self.by_name_ms, 50), 3),
            "by_name_p99_ms": round(percentile(self.by_name_ms, 99), 3),
        }
        if self.event_ms:
            row["event_p50_ms"] = round(percentile(self.event_ms, 50), 3)
            row["event_p99_ms"] = round(percentile(self.event_ms, 99), 3)
        return row


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


async def run_client(
    port: int, keys: list[str], server_pid: int, storage_pids: list[int], args: argparse.Namespace
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
    if args.client == "lean":
        import _lean_register  # bench/ is on sys.path: this script's directory

        lean = [
            _lean_register.build(
                "127.0.0.1",
                port,
                kite.identity_wire,
                kite.config.kite_key,
                f"http://10.1.{i // 250}.{i % 250}:4000/kite",
            )
            for i, kite in enumerate(kites)
        ]

    async def register_worker() -> None:
        for i, kite in todo:
            if args.client == "lean":
                await _lean_register.register("127.0.0.1", port, lean[i])
                continue
            auth = Authentication("kiteKey", kite.config.kite_key)
            async with kite.new_client(url, auth=auth) as client:
                await client.tell(
                    "register", {"url": f"http://10.1.{i // 250}.{i % 250}:4000/kite"}
                )

    # One query first: a storage that answers queries from a cache fed by its watch (etcd) then
    # has that watch running while the kites register, as in a Kontrol that has served queries.
    prime = {"id": "bench-prime"}
    with anyio.fail_after(args.deadline):
        if args.client == "lean":
            async with _lean_register.LeanQuerier(
                "127.0.0.1", port, kites[0].identity_wire, kites[0].config.kite_key
            ) as primer:
                await primer.get(primer.prepare(prime))
        else:
            auth = Authentication("kiteKey", kites[0].config.kite_key)
            async with kites[0].new_client(url, auth=auth) as primer_client:
                await primer_client.tell("getKites", {"query": prime})
        await anyio.sleep(0.2)  # the cache's range read and watch set-up

    started, server_cpu, client_cpu, storage_cpu = (
        time.perf_counter(),
        cpu_seconds(server_pid),
        time.process_time(),
        tree_cpu_seconds(storage_pids),
    )
    with anyio.fail_after(args.deadline):
        async with anyio.create_task_group() as group:
            for _ in range(args.concurrency):
                group.start_soon(register_worker)
    register_seconds = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu
    storage_cpu = tree_cpu_seconds(storage_pids) - storage_cpu
    client_cpu = time.process_time() - client_cpu

    # --- getKites -----------------------------------------------------------------------
    rng = random.Random(args.seed)
    querier = kites[0]
    by_id_queries = [{"id": rng.choice(kites).id} for _ in range(args.warmup + args.queries)]
    by_name_queries = [  # distinct objects: one prepared call each
        {"username": "user00", "environment": ENVIRONMENT, "name": "name00"}
        for _ in range(args.warmup)
    ]
    for _ in range(max(1, args.queries // 4)):
        user, name = rng.randrange(USERS), rng.randrange(NAMES)
        by_name_queries.append(
            {"username": f"user{user:02d}", "environment": ENVIRONMENT, "name": f"name{name:02d}"}
        )
    by_id: list[float] = []
    by_name: list[float] = []
    by_name_count = 0
    with anyio.fail_after(args.deadline):
        async with contextlib.AsyncExitStack() as stack:
            if args.client == "lean":
                lean_querier = await stack.enter_async_context(
                    _lean_register.LeanQuerier(
                        "127.0.0.1", port, querier.identity_wire, querier.config.kite_key
                    )
                )
                prepared = {
                    id(query): lean_querier.prepare(query)
                    for query in [*by_id_queries, *by_name_queries]
                }

                async def get(query: dict[str, str]) -> tuple[float, int]:
                    call = prepared[id(query)]
                    t0 = time.perf_counter()
                    found = await lean_querier.get(call)
                    return (time.perf_counter() - t0) * 1000, len(found)

            else:
                auth = Authentication("kiteKey", querier.config.kite_key)
                client = await stack.enter_async_context(querier.new_client(url, auth=auth))

                async def get(query: dict[str, str]) -> tuple[float, int]:
                    t0 = time.perf_counter()
                    answer = await client.tell("getKites", {"query": query})
                    return (time.perf_counter() - t0) * 1000, len(answer["kites"])

            for i, query in enumerate(by_id_queries):
                ms, count = await get(query)
                assert count == 1, count
                if i >= args.warmup:
                    by_id.append(ms)
            for i, query in enumerate(by_name_queries):
                ms, by_name_count = await get(query)
                if i >= args.warmup:
                    by_name.append(ms)
    event_ms, sent_ms, early = await measure_events(url, kites[0].config.kite_key, keys, args)
    return Figures(
        args.storage,
        args.kites,
        register_seconds,
        by_id,
        by_name,
        by_name_count,
        server_cpu,
        client_cpu,
        event_ms,
        sent_ms,
        early,
        args.watchers,
        args.event_kites,
        storage_cpu=storage_cpu,
    )


async def measure_events(
    url: str, watcher_key: str, keys: list[str], args: argparse.Namespace
) -> tuple[list[float], list[float], int]:
    """The ``events`` phase (see the module docs): latencies in ms from the ``register``
    answer and from the ``register`` call, and how many arrived before the answer."""
    import anyio

    from kitecore import Authentication, Config, Kite
    from kitecore.plugins import load_plugins

    if args.watchers <= 0 or args.event_kites <= 0:
        return [], [], 0
    plugins = load_plugins(names=["websocket"])
    base = Config(ip="127.0.0.1", port=0, environment=ENVIRONMENT, timeout=30.0)
    sent_at: dict[str, float] = {}
    arrivals: dict[str, list[float]] = {}
    complete: dict[str, tuple[int, anyio.Event]] = {}

    def handler(message: dict) -> None:
        event = message.get("result") or {}
        if event.get("action") != "REGISTER":
            return
        kite_id = event["kite"]["id"]
        seen = arrivals.setdefault(kite_id, [])
        seen.append(time.perf_counter())
        wanted, all_there = complete[kite_id]
        if len(seen) >= wanted:
            all_there.set()

    watcher = Kite("watcher", "1.0.0", config=base.copy(), plugins=plugins)
    auth = Authentication("kiteKey", watcher_key)
    registered_at: dict[str, float] = {}
    with anyio.fail_after(args.deadline):
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(watcher.new_client(url, auth=auth))
                for _ in range(WATCH_CONNECTIONS)
            ]

            async def watch(index: int) -> None:
                query = {"environment": ENVIRONMENT, "name": f"event{index % WATCH_NAMES:03d}"}
                client = clients[index % WATCH_CONNECTIONS]
                answer = await client.tell("getKites", {"query": query, "watchHandler": handler})
                assert answer.get("watcherID"), answer

            async with anyio.create_task_group() as group:
                for index in range(args.watchers):
                    group.start_soon(watch, index)
            watchers_per_name = [0] * WATCH_NAMES
            for index in range(args.watchers):
                watchers_per_name[index % WATCH_NAMES] += 1
            for i in range(args.event_kites):  # one at a time: latency, not queueing
                config = base.copy()
                config.apply_kite_key(keys[i % USERS])
                name = i % WATCH_NAMES
                kite = Kite(f"event{name:03d}", "1.0.0", config=config, plugins=plugins)
                all_there = anyio.Event()
                complete[kite.id] = (watchers_per_name[name], all_there)
                if not watchers_per_name[name]:
                    continue
                kite_auth = Authentication("kiteKey", kite.config.kite_key)
                async with kite.new_client(url, auth=kite_auth) as client:
                    target = {"url": f"http://10.9.{i // 250}.{i % 250}:1/kite"}
                    sent_at[kite.id] = time.perf_counter()
                    await client.tell("register", target)
                    registered_at[kite.id] = time.perf_counter()
                    await all_there.wait()
    latencies: list[float] = []
    from_call: list[float] = []
    early = 0
    for kite_id, returned in registered_at.items():
        for arrived in arrivals.get(kite_id, ()):
            early += arrived < returned
            latencies.append(max(0.0, arrived - returned) * 1000)
            from_call.append((arrived - sent_at[kite_id]) * 1000)
    return latencies, from_call, early


# ---------------------------------------------------------------- report


def report(figures: Figures, pinned: str) -> bool:
    """Print the summary; True when every target is met."""
    rate = figures.registrations_per_second
    target_rate = TARGET_REGISTRATIONS[figures.storage]
    print(
        f"Kontrol from {figures.label}, {figures.storage} storage, {figures.kites} kites ({pinned})"
    )
    ok = rate >= target_rate
    print(
        f"  register: {rate:8.0f} registrations/s   ({figures.register_seconds:.1f}s; "
        f"target >= {target_rate:.0f}/s)  {'OK' if ok else 'MISS'}"
    )
    seconds = figures.register_seconds
    print(
        f"            CPU per registration: Kontrol {figures.server_cpu_us:6.0f} us, "
        f"storage {figures.storage_cpu_us:6.0f} us, client {figures.client_cpu_us:6.0f} us; "
        "busy: Kontrol "
        f"{figures.server_cpu / seconds:.0%}, client {figures.client_cpu / seconds:.0%} "
        "(of one core each)"
    )
    rows = [("getKites by id", figures.by_id_ms, 1, True)]
    rows.append(("getKites user/env/name", figures.by_name_ms, figures.by_name_count, False))
    for label, samples, count, by_id in rows:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        verdict = "OK" if p99 < TARGET_P99_MS else "MISS"
        ok = ok and p99 < TARGET_P99_MS
        target = f"target p99 < {TARGET_P99_MS:g} ms"
        if by_id:
            p50_target = TARGET_BY_ID_P50_MS[figures.storage]
            p50_ok = p50 <= p50_target
            ok = ok and p50_ok
            verdict = "OK" if p50_ok and verdict == "OK" else "MISS"
            target = f"target p50 <= {p50_target:g} ms, p99 < {TARGET_P99_MS:g} ms"
        print(
            f"  {label:<24} ({count:>3} kites, {len(samples)} calls): "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  mean {statistics.fmean(samples):6.2f} ms  "
            f"({target})  {verdict}"
        )
    if figures.event_ms:
        samples = figures.event_ms
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        target = TARGET_EVENT_P99_MS[figures.storage]
        verdict = "OK" if p99 < target else "MISS"
        ok = ok and p99 < target
        print(
            f"  watch event, {figures.watchers} watchers ({figures.event_kites} kites, "
            f"{len(samples)} arrivals): register returned -> event at the watcher "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(samples):6.2f} ms  "
            f"(target p99 < {target:g} ms)  {verdict}"
        )
        sent = figures.sent_ms
        s50, s99 = percentile(sent, 50), percentile(sent, 99)
        print(
            f"            {figures.early_events} of {len(samples)} events arrived before the "
            f"register answer (Kontrol announces a kite as soon as it is stored, before "
            f"it answers); from the register call: p50 {s50:6.2f} ms  p99 {s99:6.2f} ms"
        )
        print(
            f"            the pool's polling it replaces (refresh_interval "
            f"{POOL_REFRESH_INTERVAL:g}s) sees a new kite {POOL_REFRESH_INTERVAL / 2:g}s later "
            f"on average, {POOL_REFRESH_INTERVAL:g}s at worst: "
            f"{POOL_REFRESH_INTERVAL * 1000 / 2 / max(s50, 0.001):,.0f}x the p50 from the call"
        )
    return ok


@contextlib.contextmanager
def storage_server(kind: str, work_dir: str):
    """Yield the storage URL of ``kind`` and its server's process ids, starting (and then
    stopping) the server."""
    if kind == "memory":
        yield "memory://", []
    elif kind == "etcd":
        from kite_storage_etcd.testing import EtcdCluster

        with EtcdCluster.start(os.path.join(work_dir, "etcd"), size=1) as cluster:
            pids = [m.process.pid for m in cluster.members if m.process is not None]
            yield cluster.storage_url("/bench"), pids
    else:
        from kite_storage_postgres.testing import TemporaryPostgres

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _postgres_server import POOL_SIZE

        with TemporaryPostgres() as server:
            # the postmaster; its backends are forked when Kontrol connects, on its CPUs
            pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            yield server.url(pool_max_size=POOL_SIZE, pool_min_size=POOL_SIZE), [pid]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kites", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="repeat, then print medians")
    parser.add_argument("--json", action="store_true", help="one JSON line of figures per run")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent registrations")
    parser.add_argument("--queries", type=int, default=2000, help="getKites calls by id")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--storage", choices=sorted(PLUGINS), default="memory")
    parser.add_argument("--watchers", type=int, default=1000, help="watchers (0: no event phase)")
    parser.add_argument("--event-kites", type=int, default=200, help="registrations timed")
    parser.add_argument(
        "--client",
        choices=["lean", "full"],
        default="lean",
        help="registering kites: the wire spoken directly (lean) or kitecore's Kite client",
    )
    parser.add_argument(
        "--tree",
        metavar="PATH",
        help="also run Kontrol from this checkout (e.g. a clean main) in every run: before/after",
    )
    parser.add_argument("--serve", metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--storage-url", default="memory://", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.storage_url)
        return 0
    if args.kites % (USERS * NAMES):
        parser.error(f"--kites must be a multiple of {USERS * NAMES}")

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
        pinned = f"Kontrol pinned to CPU {server_cpu}, client on CPU {','.join(map(str, cpus[1:]))}"
    else:
        pinned = "one CPU, not pinned"
    trees: list[str | None] = [None] if not args.tree else [args.tree, None]
    runs: dict[str | None, list[Figures]] = {tree: [] for tree in trees}
    met = True
    print(f"registering client: {args.client}")
    for run in range(args.runs):
        for tree in trees:
            if args.runs > 1 or args.tree:
                print(
                    f"--- run {run + 1} of {args.runs}, Kontrol from {tree or 'this checkout'} "
                    f"(load average {os.getloadavg()[0]:.2f})"
                )
            figures = run_once(args, server_cpu, tree)
            runs[tree].append(figures)
            ok = report(figures, pinned)
            met = met and (ok or tree is not None)
            if args.json:
                print(json.dumps({"run": run + 1, **figures.summary()}), flush=True)
    if args.runs > 1 or args.tree:
        report_medians([runs[tree] for tree in trees])
    print("targets met" if met else "targets missed")
    return 0


def run_once(args: argparse.Namespace, server_cpu: int | None, tree: str | None) -> Figures:
    """One run: fresh storage server and Kontrol, then every phase."""
    import tempfile

    import anyio

    with (
        tempfile.TemporaryDirectory(prefix="kontrol-bench-") as data_dir,
        storage_server(args.storage, data_dir) as (storage_url, storage_pids),
    ):
        if server_cpu is not None:  # Kontrol and its storage share one core, the client another
            for pid in storage_pids:
                os.sched_setaffinity(pid, {server_cpu})
        process, port, keys = start_server(
            os.path.join(data_dir, "kontrol"), storage_url, server_cpu, tree
        )
        try:
            figures = anyio.run(run_client, port, keys, process.pid, storage_pids, args)
            figures.label = tree or "this checkout"
            return figures
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def report_medians(variants: list[list[Figures]]) -> None:
    """The median of each headline figure over the runs of each variant (Kontrol from
    ``--tree``, then this checkout); with two, the ratio this / tree."""
    first = variants[0][0]
    print(f"Medians of {len(variants[0])} runs ({first.storage} storage, {first.kites} kites):")
    labels = [runs[0].label for runs in variants]
    print(f"  {'':<24} " + "".join(f"{label[-24:]:>26}" for label in labels))
    medians: list[dict[str, float]] = []
    for runs in variants:
        rows = [figures.summary() for figures in runs]
        medians.append(
            {
                key: statistics.median(float(row[key]) for row in rows)
                for key, value in rows[0].items()
                if not isinstance(value, str) and key != "kites"
            }
        )
    for key in medians[0]:
        cells = "".join(f"{m.get(key, float('nan')):26.3f}" for m in medians)
        ratio = ""
        if len(medians) == 2 and medians[0].get(key):
            ratio = f"   x{medians[1].get(key, float('nan')) / medians[0][key]:.2f}"
        print(f"  {key:<24} {cells}{ratio}")


if __name__ == "__main__":
    sys.exit(main())
