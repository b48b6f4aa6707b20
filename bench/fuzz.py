"""A longer fuzzing run of the peer-input parsers than the one CI runs.

CI runs every property with few examples (``tests/fuzz``: the ``ci`` hypothesis profile, 100
each); this runs the same test files with ``--examples`` each (``KITE_FUZZ_EXAMPLES``, which
``tests/fuzz/conftest.py`` and ``tests/protocol/test_fuzz_properties.py`` both honour) and
prints, per file, how long it took and whether every property held. A failure prints
hypothesis's falsifying example and the exit code is non-zero.

    python bench/fuzz.py [--examples 5000] [--only sockjs,http] [--seed 1]

``--only`` picks test files by a part of their name (``sockjs``, ``http``, ``properties``...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "tests" / "fuzz"
#: Property files kept next to the code they test (the dnode decoder, envelope, versions).
EXTRA = [ROOT / "tests" / "protocol" / "test_fuzz_properties.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per property")
    parser.add_argument("--only", default="", help="comma-separated parts of test file names")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (reproducible)")
    args = parser.parse_args()

    files = sorted(FUZZ.glob("test_fuzz_*.py")) + [p for p in EXTRA if p.exists()]
    if args.only:
        parts = [p.strip() for p in args.only.split(",") if p.strip()]
        files = [f for f in files if any(p in f.stem for p in parts)]
    if not files:
        print("no fuzz test files matched", file=sys.stderr)
        return 2
    env = dict(os.environ, KITE_FUZZ_PROFILE="long", KITE_FUZZ_EXAMPLES=str(args.examples))
    print(f"fuzz: {args.examples} examples per property, {len(files)} files")
    failed = 0
    started = time.perf_counter()
    for path in files:
        command = [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:randomly", "-x"]
        command += ["-p", "no:cacheprovider", "-o", "timeout=0"]
        if args.seed is not None:
            command.append(f"--hypothesis-seed={args.seed}")
        t0 = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        state = "ok  " if result.returncode == 0 else "FAIL"
        print(f"  {state} {path.name:32s} {seconds:7.1f}s  {summary}")
        if result.returncode != 0:
            failed += 1
            print(result.stdout[-6000:])
            print(result.stderr[-2000:], file=sys.stderr)
    print(f"total {time.perf_counter() - started:.1f}s, {failed} file(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
