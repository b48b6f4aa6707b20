"""ASGI serving: ``square`` calls/s through uvicorn (``Kite.asgi_app()``) vs the kite's own server.

Two server processes serve the same kite (raw ``websocket`` transport): one with the built-in
HTTP/WebSocket server (``async with kite``), one as an ASGI app in uvicorn (plain asyncio
loop, like the built-in one; ``--ws`` picks uvicorn's WebSocket implementation). One client
kite calls each in turn, on one connection each:

- ``seq``: calls one after another;
- ``conc``: ``--concurrency`` calls in flight at all times.

Each figure is the median of ``--repeat`` rounds (servers alternating); the last line gives
the ratio uvicorn / built-in.

    python bench/asgi.py [--calls 3000] [--concurrency 64] [--repeat 3] [--ws auto]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _calls import square_calls_per_second

SERVERS = ("builtin", "uvicorn")


def _kite() -> Any:
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    config = Config(ip="127.0.0.1", port=0, disable_authentication=True)
    kite = Kite("square", "1.0.0", config=config, plugins=load_plugins(names=["websocket"]))

    async def square(r: Any) -> Any:
        a = r.args.one()
        return a * a

    kite.handle("square", square)
    return kite


def serve(server: str, port: int, ws: str) -> None:
    """Child: serve ``square`` on ``port`` and print the port once listening."""
    import anyio

    kite = _kite()
    if server == "builtin":
        kite.config.port = port

        async def main() -> None:
            async with kite:
                print(kite.port, flush=True)
                await anyio.sleep_forever()

        anyio.run(main)
        return

    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            print(port, flush=True)

    config = uvicorn.Config(
        kite.asgi_app(),
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        ws=ws,
        lifespan="on",
        log_level="warning",
    )
    Server(config).run()


async def measure(url: str, calls: int, concurrency: int) -> float:
    """Calls per second of ``calls`` square calls with ``concurrency`` in flight."""
    from kitecore import Config, Kite
    from kitecore.plugins import load_plugins

    kite = Kite("bench", "1.0.0", config=Config(), plugins=load_plugins(names=["websocket"]))
    async with kite.new_client(url) as client:
        return await square_calls_per_second(client, calls, concurrency)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--ws", default="auto", help="uvicorn's --ws: auto, websockets-sansio, websockets, wsproto"
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.ws)
        return

    import anyio

    processes: dict[str, subprocess.Popen[str]] = {}
    ports: dict[str, int] = {}
    try:
        for server in SERVERS:
            command = [sys.executable, __file__, "--serve", server, "--ws", args.ws]
            command += ["--port", str(_free_port())]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            processes[server] = process
            assert process.stdout is not None
            ports[server] = int(process.stdout.readline())
        figures: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for server in SERVERS:
                url = f"ws://127.0.0.1:{ports[server]}/kite"
                for workload, concurrency in (("seq", 1), ("conc", args.concurrency)):
                    n = args.calls if concurrency > 1 else args.calls // 3
                    rate = anyio.run(measure, url, n, concurrency)
                    figures.setdefault((server, workload), []).append(rate)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(10)

    medians = {key: statistics.median(values) for key, values in figures.items()}
    print(f"{'server':<22}{'seq calls/s':>14}{'conc calls/s':>14}")
    for server in SERVERS:
        label = f"uvicorn (ws={args.ws})" if server == "uvicorn" else "built-in"
        print(f"{label:<22}{medians[server, 'seq']:>14.0f}{medians[server, 'conc']:>14.0f}")
    seq = medians["uvicorn", "seq"] / medians["builtin", "seq"]
    conc = medians["uvicorn", "conc"] / medians["builtin", "conc"]
    print(f"ratio uvicorn / built-in: seq {seq:.2f}x, conc {conc:.2f}x")


if __name__ == "__main__":
    main()
