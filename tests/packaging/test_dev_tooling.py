"""The development commands the README gives exist and run on a fresh clone.

``scripts/hatch`` (hatch, installed when missing), ``hatch run lint`` with an exactly pinned ruff
and mypy, ``hatch run bench`` (bench/run.py, covering every benchmark), and lint in
``scripts/test.sh``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from venvs import REPO, run

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

HATCH = tomllib.loads((REPO / "hatch.toml").read_text())
README = (REPO / "README.md").read_text()


def test_ruff_is_pinned_exactly() -> None:
    ruff = [dep for dep in HATCH["envs"]["default"]["dependencies"] if dep.startswith("ruff")]
    assert len(ruff) == 1 and re.fullmatch(r"ruff==\d+\.\d+\.\d+", ruff[0]), ruff


def test_lint_runs_mypy_strict_pinned_exactly_over_the_core_and_every_plugin() -> None:
    mypy = [dep for dep in HATCH["envs"]["default"]["dependencies"] if dep.startswith("mypy")]
    assert len(mypy) == 1 and re.fullmatch(r"mypy==\d+\.\d+\.\d+", mypy[0]), mypy
    lint = HATCH["envs"]["default"]["scripts"]["lint"]
    assert any(command.split()[0] == "mypy" for command in lint), lint
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) == {"kitecore", "plugins/*/src"}


def test_every_script_of_the_default_environment_names_files_that_exist() -> None:
    for name, script in HATCH["envs"]["default"]["scripts"].items():
        for command in [script] if isinstance(script, str) else script:
            for word in command.split():
                if word.endswith(".py"):
                    assert (REPO / word).is_file(), f"hatch run {name}: {word} does not exist"


def test_bench_run_covers_every_benchmark_and_runs() -> None:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec and spec.loader
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    benchmarks = {
        path.stem for path in (REPO / "bench").glob("*.py") if path.stem not in ("run", "__init__")
    }
    assert set(bench_run.QUICK) == {name for name in benchmarks if not name.startswith("_")}
    out = run([sys.executable, str(REPO / "bench" / "run.py"), "storage"], REPO, timeout=300)
    assert "==> storage" in out and re.search(r"storage\s+[\d.]+ s\s+done", out), out


def test_bench_run_refuses_an_unknown_name_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "nosuch"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown benchmark nosuch" in done.stderr.splitlines()[-1]


def test_scripts_hatch_runs_hatch() -> None:
    wrapper = REPO / "scripts" / "hatch"
    assert os.access(wrapper, os.X_OK)
    assert run([str(wrapper), "--version"], REPO / "tests", timeout=600).startswith("Hatch")


@pytest.mark.parametrize("command", sorted(set(re.findall(r"\bhatch (?:shell|run)\b", README))))
def test_readme_names_hatch_through_the_wrapper(command: str) -> None:
    bare = re.findall(rf"(?<![\w/.-]){command}", README)
    assert not bare, f"README says `{command}`, but plain hatch is not on PATH: scripts/hatch"


def test_ci_lints_before_the_suites() -> None:
    script = (REPO / "scripts" / "test.sh").read_text()
    lint = script.index('"$HATCH" run lint')
    assert lint < script.index("run_suite test"), "lint runs first"
    assert re.search(r"exit .*lint", script), "a lint failure fails the run"
