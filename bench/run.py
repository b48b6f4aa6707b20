"""Run the benchmarks under bench/ one after another and print their figures.

By default every benchmark runs in a quick mode (small counts, one round, the embedded
``memory://`` storage only): a check that they all work, with rough figures, in a minute or
two. ``--full`` runs each with its own defaults (the figures the targets are about; it takes
much longer, and ``storage`` then also starts a throw-away etcd and PostgreSQL).

    python bench/run.py [--full] [NAME ...]        # NAME: rpc, sockjs, pool, kontrol, storage, ...
    hatch run bench [--full] [NAME ...]             # the same, in the development environment

Each benchmark is its own process (``python bench/NAME.py ...``); its output is passed through.
The exit status is 1 when one of them exited non-zero: it failed, or (storage) missed a target.
The others print whether their targets were met.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> the arguments of its quick mode (``--full``: none, the benchmark's defaults)
QUICK: dict[str, list[str]] = {
    "rpc": ["--calls", "500", "--connects", "50", "--repeat", "1"],
    "sockjs": ["--calls", "300", "--xhr-calls", "100", "--repeat", "1"],
    "pool": ["--kites", "2", "--calls", "300", "--repeat", "1"],
    "kontrol": ["--kites", "500", "--queries", "200", "--warmup", "20"],
    "storage": ["--storage", "memory://", "--kites", "1000", "--queries", "200"],
    "connections": ["-n", "500", "--calls", "100"],
    "interceptors": ["--calls", "500", "--repeat", "1"],
    "observability": ["--calls", "500", "--repeat", "1"],
    "fuzz": ["--examples", "30"],
    "proxy": ["--calls", "1000", "--seq-calls", "200"],
    "asgi": ["--calls", "500", "--repeat", "1"],
    # builds its compiled copy of kitecore first (about a minute; a C compiler is needed)
    "compiled": ["--calls", "500", "--connects", "50", "--repeat", "1"],
    "go_kite": ["--calls", "300", "--repeat", "1"],  # ours only: a Go kite is never at hand
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(QUICK)} (all)")
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in QUICK]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(QUICK)}")

    results: list[tuple[str, int, float]] = []
    for name in args.names or list(QUICK):
        command = [sys.executable, str(HERE / f"{name}.py"), *([] if args.full else QUICK[name])]
        print(f"==> {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, check=False).returncode
        results.append((name, status, time.monotonic() - started))
        print(flush=True)

    print("summary:")
    for name, status, seconds in results:
        outcome = "done" if status == 0 else f"exit {status}: failed or missed a target"
        print(f"  {name:<8} {seconds:6.1f} s  {outcome}")
    return 0 if all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
