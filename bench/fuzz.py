"""A longer fuzzing run of the peer-input parsers than the one CI runs.

Runs the hypothesis properties of ``tests/protocol/test_fuzz_properties.py`` (dnode decoder and
session, request envelope, versions and constraints) with ``--examples`` examples each instead
of the default 150; any error type other than the documented ones fails the run.

    python bench/fuzz.py [--examples 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args()
    env = dict(os.environ, KITE_FUZZ_EXAMPLES=str(args.examples))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        str(ROOT / "tests" / "protocol" / "test_fuzz_properties.py"),
    ]
    return subprocess.call(command, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
