"""Proxy throughput: ``square`` calls direct, through the reverse proxy and through the tunnel.

The two proxies run in processes of their own (so their CPU time can be read from
``/proc``); the kites and the caller run here. One kite listens (direct and reverse proxy),
one listens nowhere (tunnel). Over SockJS-websocket, for each path in the same run:

- ``seq``: calls one after another;
- ``conc``: ``--concurrency`` calls in flight at all times.

It prints calls/s, the ratio to direct (target: >= 0.5x with 64 in flight through either proxy)
and the proxy's CPU time per forwarded message (a call is two messages: request and response).

    python bench/proxy.py [--calls 2000] [--seq-calls 500] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import anyio

TICKS = os.sysconf("SC_CLK_TCK")


def serve(kind: str) -> None:
    """Run one proxy (authentication off) and print its URL."""
    from kite_proxy import ReverseProxy, TunnelProxy

    from kitecore import Config

    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    proxy = ReverseProxy(config) if kind == "reverse" else TunnelProxy(config)

    async def main() -> None:
        async with proxy:
            print(proxy.url, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def rate(client: Any, calls: int, concurrency: int) -> float:
    """Calls per second of ``calls`` square calls with ``concurrency`` in flight."""
    todo = iter(range(calls))

    async def worker() -> None:
        for n in todo:
            assert await client.tell("square", n) == n * n

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return calls / (time.perf_counter() - start)


async def run(args: argparse.Namespace, procs: dict[str, subprocess.Popen[str]]) -> int:
    from kite_proxy import register_to_proxy, register_to_tunnel

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    plugins = load_plugins(names=["websocket", "sockjs", "proxy"])
    urls = {name: proc.stdout.readline().strip() for name, proc in procs.items()}  # type: ignore[union-attr]

    def make(name: str) -> Kite:
        kite = Kite(
            name,
            "1.0.0",
            config=Config(ip="127.0.0.1", disable_authentication=True),
            plugins=plugins,
        )

        @kite.handle("square")
        async def square(r: Any) -> Any:
            a = r.args.one()
            return a * a

        return kite

    listening, hidden = make("square"), make("hidden")
    caller = make("caller")
    results: dict[str, dict[str, float]] = {}
    async with listening, anyio.create_task_group() as group:
        os.environ["KITE_PROXY_URL"] = urls["reverse"]
        reverse_url = await group.start(register_to_proxy, listening)
        os.environ["KITE_PROXY_URL"] = urls["tunnel"]
        tunnel_url = await group.start(register_to_tunnel, hidden)
        paths = {
            "direct": (listening.url, None),
            "reverse": (reverse_url, "reverse"),
            "tunnel": (tunnel_url, "tunnel"),
        }
        for label, (url, proc) in paths.items():
            async with caller.new_client(url, transport="WebSocket") as client:
                await rate(client, 100, 8)  # warm up
                pid = procs[proc].pid if proc else None
                before = cpu_seconds(pid) if pid else 0.0
                seq = await rate(client, args.seq_calls, 1)
                conc = await rate(client, args.calls, args.concurrency)
                used = (cpu_seconds(pid) - before) if pid else 0.0
                messages = 2 * (args.seq_calls + args.calls)
                results[label] = {"seq": seq, "conc": conc, "cpu_us": used / messages * 1e6}
        group.cancel_scope.cancel()
    head = ("path", "seq calls/s", "conc calls/s", "seq x", "conc x", "proxy CPU/msg")
    print("{:8} {:>12} {:>13} {:>6} {:>7} {:>14}".format(*head))
    direct = results["direct"]
    ok = True
    for label, figures in results.items():
        ratio_seq = figures["seq"] / direct["seq"]
        ratio_conc = figures["conc"] / direct["conc"]
        cpu = f"{figures['cpu_us']:.0f} us" if label != "direct" else "-"
        print(
            f"{label:8} {figures['seq']:12.0f} {figures['conc']:13.0f} "
            f"{ratio_seq:6.2f} {ratio_conc:7.2f} {cpu:>14}"
        )
        if label != "direct" and ratio_conc < 0.5:
            ok = False
    verdict = "met" if ok else "MISSED"
    print(f"target (>= 0.5x direct, {args.concurrency} in flight, either proxy): {verdict}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of the concurrent phase")
    parser.add_argument("--seq-calls", type=int, default=500, help="calls of the sequential phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--serve", choices=("reverse", "tunnel"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    procs = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--serve", name], stdout=subprocess.PIPE, text=True
        )
        for name in ("reverse", "tunnel")
    }
    try:
        return anyio.run(run, args, procs)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
