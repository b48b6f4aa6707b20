"""Many idle connections: server memory per connection, connect rate, a fresh caller's latency.

A kite (raw WebSocket, authentication off) runs in another process. The bench opens ``-n``
WebSocket connections to it that upgrade and then stay silent, as a crowd of idle peers
would, and reports:

- the server's resident memory before, with the connections open (per connection), and
  after they are closed (against the baseline; read once the server's release after a
  crowd, two steps over some 3.5 s, is done: the server reports each step on its stdout
  (a hook of :meth:`HTTPServer.on_release`), the reading is taken once both are reported,
  at least :data:`AFTER_CLOSE_WAIT` seconds after the last close, and steady for 1.5 s);
- the connect rate (TCP connect + upgrade, ``--parallel`` at a time);
- ``square`` latency for a fresh client at that count: connect + first call, then the median
  and 99th percentile of ``--calls`` calls.

Both processes raise their descriptor limit to the hard limit (``resource.setrlimit``).

    python bench/connections.py [-n 10000] [--parallel 200] [--calls 500] [--repeat 1]
                                [--loop asyncio|uvloop|trio] [--tree /path/to/other/checkout]
                                [--malloc pymalloc|malloc] [--trim-baseline]
                                [--probe DIR [--trace]]

``--loop`` picks the server's event loop; ``--tree`` runs the server on Kite from another
checkout (for before/after comparisons: the same bench, the same client); ``--malloc malloc``
runs the server with ``PYTHONMALLOC=malloc`` (see docs/limits.md: memory after a crowd).
The baseline is the server's memory once started and warmed up by one caller's calls;
``--trim-baseline`` has it give its free memory back first (what start-up left free in
glibc's heap, which the release after the crowd gives back too): a stricter baseline.
``--probe DIR`` is for finding what keeps memory after a crowd (see :func:`install_probe`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO


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


def pymalloc_arenas() -> str:
    """Debugging: each pymalloc arena of this process (found by the headers of its 16 KiB
    pools in the anonymous mappings), its pools in use, and the types of the objects in the
    arenas with fewer than 16 pools in use (the ones a few survivors keep)."""
    import ctypes
    import gc

    types: dict[int, str] = _PROBED.setdefault("types", {})  # type: ignore[assignment]
    if not types:  # (made at the first probe: not among what the later ones look at)
        for obj in gc.get_objects():
            t = type(obj)
            types.setdefault(id(t), t.__qualname__)
        for t in (str, bytes, int, float, tuple, type(None), bool, complex, range, slice):
            types[id(t)] = t.__qualname__
        classes: list[type] = [object]
        while classes:  # every class (those of C extensions too)
            cls = classes.pop()
            if id(cls) not in types or cls is object:
                types[id(cls)] = f"{cls.__module__}.{cls.__qualname__}"
                try:
                    classes.extend(cls.__subclasses__())
                except TypeError:  # (type.__subclasses__ needs an argument)
                    classes.extend(type.__subclasses__(cls))  # type: ignore[arg-type]
    pool, header = 16384, 48
    arenas: dict[int, list[tuple[int, int, int]]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) != 5 or not fields[1].startswith("rw"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        for address in range((start + pool - 1) // pool * pool, end - pool + 1, pool):
            count, _free, _next, _prev, index, size_index, nextoffset, maxnext = (
                ctypes.c_uint64.from_address(address).value & 0xFFFFFFFF,
                *(ctypes.c_uint64.from_address(address + 8 * i).value for i in (1, 2, 3)),
                *(ctypes.c_uint32.from_address(address + 32 + 4 * i).value for i in range(4)),
            )
            block = (size_index + 1) * 16
            if not (
                size_index < 32
                and maxnext == pool - block
                and header <= nextoffset <= pool
                and count <= (pool - header) // block
            ):
                continue
            arenas.setdefault(index, []).append((address, count, block, nextoffset))
    lines = []
    for index, pools in sorted(arenas.items()):
        used = [p for p in pools if p[1]]  # (address, blocks in use, block size, end)
        lines.append(
            f"arena {index}: {len(pools)} pools, {len(used)} in use, "
            f"{sum(p[1] for p in used)} blocks"
        )
        if len(used) >= 16:
            continue
        for address, count, block, nextoffset in used:
            found: dict[str, int] = {}
            samples: list[str] = []
            free = set()
            at = ctypes.c_uint64.from_address(address + 8).value
            while at and len(free) < pool:
                free.add(at)
                at = ctypes.c_uint64.from_address(at).value
            for offset in range(header, nextoffset, block):
                at = address + offset
                if at in free:
                    continue
                found["?"] = found.get("?", 0) + 1
                # (tracked by the collector: a 16-byte head; with a dict of their own
                # (instances of classes without __slots__): 32 bytes)
                for skip in (s for s in (0, 16, 32) if s + 16 <= block):
                    name = types.get(ctypes.c_uint64.from_address(at + skip + 8).value)
                    refs = ctypes.c_int64.from_address(at + skip).value
                    if name is not None and 0 < refs < 1 << 32:
                        found[name] = found.get(name, 0) + 1
                        found["?"] -= 1
                        if name in ("str", "bytes", "int", "float") and len(samples) < 4:
                            value = ctypes.cast(at + skip, ctypes.py_object).value
                            samples.append(repr(value)[:40])
                        break
            lines.append(f"  pool {address:x} size {block}: {count} blocks {found} {samples}")
    # the objects the collector tracks in those sparse arenas, and what holds them
    sparse = {
        address
        for pools in arenas.values()
        if sum(1 for p in pools if p[1]) < 16
        for address, count, _block, _end in pools
        if count
    }
    import gc

    lone = {}  # blocks of pools with one or two in use: which object's buffer they are
    for pools in arenas.values():
        for address, count, block, nextoffset in pools:
            if 0 < count <= 2 and address in sparse:
                for offset in range(header, nextoffset, block):
                    lone[address + offset] = block
    buffers = (
        (dict, 32, "dict keys"),
        (dict, 40, "dict values"),
        (set, 40, "set table"),
        (list, 24, "list items"),
    )
    for obj in gc.get_objects():
        for kind_type, field, kind in buffers:  # (buffer pointers of dicts, sets and lists)
            if not isinstance(obj, kind_type):
                continue
            at = ctypes.c_uint64.from_address(id(obj) + field).value
            if at in lone:
                holders = [type(h).__qualname__ for h in gc.get_referrers(obj)[:3]]
                lines.append(f"buffer {at:x} ({lone[at]}): {kind} of {repr(obj)[:80]!r}")
                lines.append(f"  <- {holders}")
    for obj in gc.get_objects():
        if id(obj) // pool * pool in sparse:
            holders = [
                f"{type(h).__qualname__}:{repr(h)[:50]}"
                for h in gc.get_referrers(obj)[:4]
                if not isinstance(h, list) or len(h) < 1000
            ]
            lines.append(
                f"live {id(obj) // pool * pool:x} {type(obj).__module__}."
                f"{type(obj).__qualname__} {repr(obj)[:70]!r} <- {holders}"
            )
    return "\n".join(lines) + "\n"


_PROBED: dict[str, object] = {}


def install_probe(directory: str, trace: bool) -> None:
    """Debugging aid (``--probe DIR``, off by default): on each SIGUSR1, write to ``DIR``
    pymalloc's statistics (``sys._debugmallocstats``), glibc's ``malloc_info``, /proc
    smaps_rollup and, with ``trace`` (``--trace``: allocations traced from the start, 25
    frames; pymalloc then reports nothing), a tracemalloc snapshot; numbered 0, 1, ... (the
    bench sends one at its baseline and one after closing)."""
    import ctypes
    import signal
    import tracemalloc

    if trace:
        tracemalloc.start(25)
    libc = ctypes.CDLL(None)
    fopen = libc.fopen
    fopen.restype = ctypes.c_void_p
    count = [0]

    def probe(signum: int, frame: object) -> None:
        n = count[0]
        count[0] += 1
        import gc

        gc.collect()
        if trace:
            tracemalloc.take_snapshot().dump(f"{directory}/snap{n}")
        sys.stderr.flush()
        saved = os.dup(2)
        with open(f"{directory}/pymalloc{n}.txt", "w") as out:
            os.dup2(out.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        stream = fopen(f"{directory}/malloc_info{n}.xml".encode(), b"w")
        if stream:
            libc.malloc_info(0, ctypes.c_void_p(stream))
            libc.fclose(ctypes.c_void_p(stream))
        with open(f"{directory}/objects{n}.txt", "w") as out:
            for obj in gc.get_objects():
                size = sys.getsizeof(obj)
                owners = ""
                if size >= 32768:
                    owners = " <- " + ", ".join(
                        type(o).__qualname__ for o in gc.get_referrers(obj)[:4]
                    )
                kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
                out.write(f"{id(obj):x} {kind} {size}{owners}\n")
            out.write(Path("/proc/self/maps").read_text())
        Path(f"{directory}/arenas{n}.txt").write_text(pymalloc_arenas())
        Path(f"{directory}/smaps{n}.txt").write_text(
            Path("/proc/self/smaps_rollup").read_text()
            + (f"traced {tracemalloc.get_traced_memory()}\n" if trace else "")
        )

    signal.signal(signal.SIGUSR1, probe)


def serve(fd_limit: int, loop: str) -> None:
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    raise_fd_limit(fd_limit)
    if os.environ.get("KITE_BENCH_TRIM"):  # --trim-baseline: SIGUSR2 gives free memory back
        import signal

        from kitecore.http.limits import release_free_memory

        signal.signal(signal.SIGUSR2, lambda signum, frame: release_free_memory())
    if os.environ.get("KITE_BENCH_PROBE"):
        install_probe(os.environ["KITE_BENCH_PROBE"], bool(os.environ.get("KITE_BENCH_TRACE")))
    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    config.max_connections = 0  # only the descriptor bound
    kite = Kite("crowd", "1.0.0", config=config, plugins=load_plugins(names=["websocket"]))
    _PROBED["kite"] = kite

    @kite.handle("square")
    async def square(r):  # type: ignore[no-untyped-def]
        a = r.args.one()
        return a * a

    async def main() -> None:
        async with kite:
            assert kite.server is not None
            # each step of the release after a crowd: the bench reads "after closing" once
            # both are done (a fixed wait can fall between them on a loaded machine)
            kite.server.on_release(functools.partial(os.write, 1, b"released\n"))
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


async def probe(pid: int, directory: str, files: int) -> None:
    """Have the server (started with ``--probe``) write its memory probes (``files`` of
    them), and wait for them."""
    before = len(os.listdir(directory))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while len(os.listdir(directory)) < before + files + 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)


async def releases(lines: asyncio.Queue[str], count: int, timeout: float = 60.0) -> int:
    """Wait for ``count`` steps of the server's release after a crowd (lines on its stdout);
    how many came within ``timeout``."""
    came = 0
    deadline = time.monotonic() + timeout
    while came < count:
        try:
            line = await asyncio.wait_for(lines.get(), deadline - time.monotonic())
        except TimeoutError:
            break
        if line.strip() == "released":
            came += 1
    return came


def read_lines(stream: IO[str], loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """The lines of ``stream`` as they come (read in a thread), in a queue of ``loop``."""
    lines: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in stream:
            loop.call_soon_threadsafe(lines.put_nowait, line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


async def round_(
    pid: int, port: int, args: argparse.Namespace, lines: asyncio.Queue[str]
) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/kite"
    await fresh_caller(url, 10)  # warm up: first-call allocations are not per connection
    if args.trim_baseline:
        os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(0.5)
    baseline = await settle(pid)
    baseline_fds = open_fds(pid)
    if args.probe:
        await probe(pid, args.probe, 4 if args.trace else 3)
    writers, rate = await open_many(port, args.n, args.parallel)
    loaded = await settle(pid)
    first, latencies = await fresh_caller(url, args.calls)
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    deadline = time.monotonic() + (600 if args.trace else 60)
    # the server is still closing its side while it holds more descriptors (another
    # process: nothing to wait on but /proc)
    while open_fds(pid) > baseline_fds + 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    # the server gives memory back in two steps, the second after its close timeout (2 s)
    # and a second more (docs/limits.md): measured once both are done
    closed = time.monotonic()
    steps = await releases(lines, 2)
    after = await settle(pid, at_least=AFTER_CLOSE_WAIT - (time.monotonic() - closed))
    if args.probe:
        await probe(pid, args.probe, 4 if args.trace else 3)
    latencies.sort()
    return {
        "steps": steps,
        "baseline": baseline,
        "loaded": loaded,
        "after": after,
        "per_conn": (loaded - baseline) / args.n,
        "rate": rate,
        "first": first,
        "median": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


async def rounds(pid: int, port: int, args: argparse.Namespace, stdout: IO[str]) -> None:
    lines = read_lines(stdout, asyncio.get_running_loop())
    for i in range(args.repeat):
        r = await round_(pid, port, args, lines)
        mib = 2**20
        print(
            f"round {i + 1}: {args.n} idle connections: "
            f"server RSS {r['baseline'] / mib:.1f} -> {r['loaded'] / mib:.1f} MiB "
            f"({r['per_conn'] / 1024:.1f} KiB per connection), "
            f"after closing {r['after'] / mib:.1f} MiB "
            f"({(r['after'] - r['baseline']) / r['baseline'] * 100:+.1f} % of baseline"
            + ("" if r["steps"] == 2 else f"; only {r['steps']} of 2 release steps seen")
            + f"); connect rate {r['rate']:.0f}/s; fresh caller: connect + first call "
            f"{r['first'] * 1e3:.1f} ms, square median {r['median'] * 1e6:.0f} us, "
            f"p99 {r['p99'] * 1e6:.0f} us",
            flush=True,
        )


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
    parser.add_argument(
        "--trim-baseline",
        action="store_true",
        help="have the server give its free memory back (a collection and malloc_trim, as "
        "its release after a crowd does) before the baseline is read: a stricter baseline, "
        "without what start-up left free in glibc's heap",
    )
    parser.add_argument(
        "--probe",
        metavar="DIR",
        help="debugging: trace the server's allocations and write memory probes to DIR "
        "at the baseline and after closing (tracemalloc adds memory and time of its own)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="with --probe: tracemalloc snapshots too (25 frames; slow, no pymalloc figures)",
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
    if args.trim_baseline:
        env["KITE_BENCH_TRIM"] = "1"
    if args.probe:
        os.makedirs(args.probe, exist_ok=True)
        env["KITE_BENCH_PROBE"] = os.path.abspath(args.probe)
        if args.trace:
            env["KITE_BENCH_TRACE"] = "1"
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
        asyncio.run(rounds(server.pid, port, args, server.stdout))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
