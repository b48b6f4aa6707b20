"""The cost of the interceptor seam: ``square`` calls/s, plain vs one no-op interceptor.

Set-ups, each its own server and client process, measured in alternating rounds:

- ``plain``: no interceptor (the seam's cost is one falsy check per call);
- ``noop``: one no-op interceptor on the server and one on the client;
- ``base`` (with ``--baseline-tree DIR``): the plain kite from another checkout's
  ``kitecore`` (e.g. ``git archive <branch-point> kitecore | tar -x -C DIR``), to compare
  the code with the seam against the code without it.

Workloads: ``seq`` (one call after another) and ``conc64`` (64 in flight). Prints medians
and the ratios noop/plain (and plain/base), by wall clock and by CPU time (the server's and
the client's CPU seconds per round: on a shared, busy machine the steadier figure).

    python bench/interceptors.py [--calls 5000] [--repeat 7] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _calls


def _plain(kite: Any, side: str) -> None:
    pass


async def _noop_server(call: Any, proceed: Any) -> Any:
    return await proceed()


async def _noop_client(call: Any, proceed: Any) -> Any:
    return await proceed()


def _noop(kite: Any, side: str) -> None:
    if side == "server":
        kite.add_interceptor(server=_noop_server)
    else:
        kite.add_interceptor(client=_noop_client)


MODES = {"plain": (["websocket"], _plain), "noop": (["websocket"], _noop)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline-tree", help="a directory holding another kitecore package")
    args = parser.parse_args()
    setups = [_calls.Setup("plain", "plain"), _calls.Setup("noop", "noop")]
    if args.baseline_tree:
        setups.insert(0, _calls.Setup("base", "plain", os.path.abspath(args.baseline_tree)))
    workloads = [("seq", args.calls), ("conc64", args.calls * 2)]
    cpus = _calls.run(__file__, setups, workloads, args.repeat)
    ratios = [("noop", "plain")]
    if args.baseline_tree:
        ratios.append(("plain", "base"))
    _calls.report(setups, workloads, ratios, args.repeat, cpus)


if __name__ == "__main__":
    if not _calls.child_main(MODES):
        main()
