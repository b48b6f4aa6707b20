"""SockJS throughput: ``square`` calls over SockJS-websocket, SockJS-xhr-polling and raw WebSocket.

One server kite (raw ``websocket`` and ``sockjs`` transports) runs in another process; one client
kite calls it over each transport in turn, on one connection each:

- ``seq``: calls one after another;
- ``conc``: ``--concurrency`` calls in flight at all times.

Each figure is the median of ``--repeat`` rounds (transports alternating). The last lines give
the ratios to raw WebSocket (target: SockJS-websocket >= 0.75x).

    python bench/sockjs.py [--calls 3000] [--xhr-calls 1000] [--concurrency 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _calls import square_calls_per_second

#: label -> (KITE_TRANSPORT name, URL scheme)
TRANSPORTS = {
    "sockjs-websocket": ("WebSocket", "http"),
    "sockjs-xhr-polling": ("XHRPolling", "http"),
    "raw-websocket": ("websocket", "ws"),
}


def serve() -> None:
    import anyio

    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    kite = Kite(
        "square", "1.0.0", config=config, plugins=load_plugins(names=["websocket", "sockjs"])
    )

    @kite.handle("square")
    async def square(r: Any) -> Any:
        a = r.args.one()
        return a * a

    async def main() -> None:
        async with kite:
            print(kite.port, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)


async def measure(url: str, transport: str, calls: int, concurrency: int) -> float:
    """Calls per second of ``calls`` square calls with ``concurrency`` in flight."""
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    kite = Kite(
        "bench", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket", "sockjs"])
    )
    async with kite.new_client(url, transport=transport) as client:
        return await square_calls_per_second(client, calls, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--xhr-calls", type=int, default=1000, help="calls for xhr-polling")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    import anyio

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        figures: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for label, (transport, scheme) in TRANSPORTS.items():
                url = f"{scheme}://127.0.0.1:{port}/kite"
                calls = args.xhr_calls if "xhr" in label else args.calls
                for workload, concurrency in (("seq", 1), ("conc", args.concurrency)):
                    n = calls if concurrency > 1 else calls // 3
                    rate = anyio.run(measure, url, transport, n, concurrency)
                    figures.setdefault((label, workload), []).append(rate)
    finally:
        server.terminate()
        server.wait(10)

    medians = {key: statistics.median(values) for key, values in figures.items()}
    print(f"{'transport':<20}{'seq calls/s':>14}{'conc calls/s':>14}")
    for label in TRANSPORTS:
        print(f"{label:<20}{medians[label, 'seq']:>14.0f}{medians[label, 'conc']:>14.0f}")
    for label in ("sockjs-websocket", "sockjs-xhr-polling"):
        seq = medians[label, "seq"] / medians["raw-websocket", "seq"]
        conc = medians[label, "conc"] / medians["raw-websocket", "conc"]
        print(f"ratio {label} / raw-websocket: seq {seq:.2f}x, conc {conc:.2f}x")


if __name__ == "__main__":
    main()
