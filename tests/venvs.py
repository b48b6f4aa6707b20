"""Fresh virtualenvs for tests that install real distributions (tests/plugins, tests/packaging).

A venv made here has no pip and no access to the test environment's site-packages: packages go
in with the test environment's pip (``pip --python VENV/bin/python install ...``), and
:func:`isolated_env` gives the environment variables to run the venv's programs with, so what
they import can only come from the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["REPO", "Venv", "isolated_env", "pip_install", "run"]

REPO = Path(__file__).resolve().parents[1]


def run(
    command: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    stdin: str | None = None,
) -> str:
    """Run ``command`` to completion; its stdout, or an assertion error with both outputs."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Venv:
    """A new virtualenv at ``path`` without pip and without system site-packages."""

    def __init__(self, path: Path) -> None:
        venv.create(path, with_pip=False, system_site_packages=False, clear=True)
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"

    def site_packages(self) -> Path:
        """The venv's ``purelib`` folder, as the venv's own interpreter reports it."""
        code = "import sysconfig; print(sysconfig.get_path('purelib'))"
        return Path(run([str(self.python), "-I", "-c", code], self.path).strip())


def pip_install(target: Venv, *requirements: str, cwd: Path, options: tuple[str, ...] = ()) -> str:
    """``pip install`` into ``target`` with the test environment's pip (the venv has none)."""
    command = [sys.executable, "-m", "pip", "--python", str(target.python), "install", "--quiet"]
    return run([*command, *options, *requirements], cwd, timeout=600)


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without anything that would let a venv's Python see other packages.

    ``PYTHONPATH``, ``PYTHONHOME``, ``PYTHONSTARTUP``, ``VIRTUAL_ENV`` and the ``KITE_*``
    variables are dropped, ``PYTHONNOUSERSITE`` is set, and ``HOME`` (with ``KITE_HOME``) points
    at ``home`` so no kite.key of the user's is read.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "KITE_", "KONTROL_")) and name != "VIRTUAL_ENV"
    }
    env.update(
        PYTHONNOUSERSITE="1",
        HOME=str(home),
        KITE_HOME=str(home / ".kite"),
        XDG_CACHE_HOME=str(home / ".cache"),
    )
    env.update(extra)
    return env
