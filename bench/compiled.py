"""What compiled code would give: ``bench/rpc.py`` with a copy of ``kitecore`` whose
per-message modules mypyc compiled, as its ``--tree`` peer (``kite@tree`` in its tables).

This is a measurement, not a supported build: kitecore ships as pure Python. The copy
behaves differently from the pure-Python package in ways its tests show (``bench/RESULTS.md``,
"A compiled core"): a compiled function checks its annotated argument types at run time,
and a recursion in compiled code is not stopped by Python's recursion limit. The modules
compiled (``MODULES``) are those that mypyc accepts unchanged and that every served and
every made call runs through: the WebSocket frame codec and connection core, the asyncio
transport driver, the dnode session and the connection driver.

    python bench/compiled.py [--keep DIR] [--modules kitecore/connection.py,...] [RPC ARGS]

It copies this checkout's ``kitecore/`` (the working tree, without caches or earlier builds)
into a temporary directory (``--keep DIR``: into ``DIR``, kept, for other benchmarks:
``PYTHONPATH=DIR python bench/observability.py``), compiles the modules in place, then runs
``bench/rpc.py --tree`` that copy with the remaining arguments (e.g. ``--workloads conn100
--loop uvloop``). It needs mypy (the development environment pins it), setuptools, a C
compiler and the Python headers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (
    "kitecore/http/frames.py",
    "kitecore/http/wscore.py",
    "kitecore/http/asyncio_driver.py",
    "kitecore/protocol/session.py",
    "kitecore/connection.py",
)

SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="kitecore-compiled-copy",
    packages=[],
    py_modules=[],
    ext_modules=mypycify(sys.argv[3:], opt_level="3"),
    script_args=sys.argv[1:3],
)
"""


def build(target: str, modules: list[str]) -> None:
    """Copy ``kitecore`` into ``target`` and compile ``modules`` (paths under it) in place."""
    missing = [name for name in ("mypyc", "setuptools") if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"compiled.py needs {' and '.join(missing)} (pip install mypy setuptools)")
    for module in modules:
        if not os.path.isfile(os.path.join(ROOT, module)):
            sys.exit(f"no such module in this checkout: {module}")
    if os.path.exists(os.path.join(target, "pyproject.toml")):  # setuptools would read it
        sys.exit(f"{target} holds a pyproject.toml: build the copy in another directory")
    os.makedirs(target, exist_ok=True)
    package = os.path.join(target, "kitecore")
    if os.path.exists(package):
        shutil.rmtree(package)
    shutil.copytree(
        os.path.join(ROOT, "kitecore"),
        package,
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as setup:
        setup.write(SETUP)
    try:
        # in ``target``, where mypyc finds the copied package by its relative paths
        built = subprocess.run(
            [sys.executable, setup.name, "build_ext", "--inplace", *modules],
            cwd=target,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(setup.name)
    shutil.rmtree(os.path.join(target, "build"), ignore_errors=True)
    if built.returncode:  # mypyc's own type errors are on stdout, the compiler's on stderr
        sys.exit(
            f"building the compiled copy failed:\n{built.stdout[-4000:]}{built.stderr[-4000:]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Other arguments go to bench/rpc.py."
    )
    parser.add_argument("--keep", metavar="DIR", help="build the copy here and keep it")
    parser.add_argument(
        "--modules",
        default=",".join(MODULES),
        help="comma-separated paths of the modules to compile (default: %(default)s)",
    )
    args, rpc_args = parser.parse_known_args()
    modules = [module for module in args.modules.split(",") if module]
    with tempfile.TemporaryDirectory(prefix="kite-compiled-") as scratch:
        target = os.path.abspath(args.keep) if args.keep else scratch
        started = time.perf_counter()
        build(target, modules)
        print(
            f"compiled {len(modules)} modules of kitecore with mypyc into {target} "
            f"in {time.perf_counter() - started:.0f}s; kite@tree below is that copy",
            flush=True,
        )
        rpc = [sys.executable, os.path.join(ROOT, "bench", "rpc.py"), "--tree", target]
        sys.exit(subprocess.run([*rpc, *rpc_args]).returncode)


if __name__ == "__main__":
    main()
