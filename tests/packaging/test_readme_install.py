"""The README's Install commands work verbatim, from a copy of this checkout, in fresh venvs.

Every ``pip install`` line of the ``## Install`` section runs in bash exactly as written, after
the section's venv line, in a copy of the checkout (its tracked and unignored files, as a clone
would have them) and a new ``.venv`` each time. Then the venv's ``kite plugins``
(``KITE_PLUGINS_STRICT=1``) must list every plugin the line names, and ``kite --version`` work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from built_wheels import PLUGIN_FOLDERS
from venvs import REPO, run


def install_section(readme: str) -> str:
    start = readme.index("\n## Install\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else len(readme)]


def shell_lines(section: str) -> list[str]:
    """The commands of the section's ``sh`` blocks, without their comments."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def named_plugins(command: str) -> set[str]:
    """The plugin folders a ``pip install`` line names (``./plugins/*``: all of them)."""
    names = set()
    for word in command.split():
        match = re.fullmatch(r"\./plugins/([\w*.-]+)/?", word)
        if match:
            names.update(PLUGIN_FOLDERS if match[1] == "*" else {match[1]})
    return names


def copy_checkout(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.timeout(1800)  # builds every distribution several times, with pip's isolation
def test_readme_install_commands_work_verbatim(tmp_path: Path) -> None:
    lines = shell_lines(install_section((REPO / "README.md").read_text()))
    (make_venv,) = [line for line in lines if " -m venv " in line]
    installs = [line for line in lines if line.startswith("pip install ")]
    assert len(installs) >= 3, lines
    checkout = copy_checkout(tmp_path / "kite")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "KITE_", "PIP_REQUIRE")) and name != "VIRTUAL_ENV"
    }
    env["HOME"] = os.environ.get("HOME", str(tmp_path))  # pip's cache
    ran = []
    for command in installs:
        plugins = named_plugins(command)
        assert plugins <= set(PLUGIN_FOLDERS), f"{command}: no such plugin folder"
        script = f"set -euo pipefail\nrm -rf .venv\n{make_venv}\n{command}\n"
        run(["bash", "-c", script], checkout, env, timeout=900)
        kite = str(checkout / ".venv" / "bin" / "kite")
        strict = {**env, "KITE_PLUGINS_STRICT": "1", "HOME": str(tmp_path)}
        assert run([kite, "--version"], tmp_path, strict).startswith("kitecore ")
        listed = json.loads(run([kite, "plugins"], tmp_path, strict))
        distributions = {entry["distribution"] for entry in listed["plugins"]}
        assert plugins <= distributions, (command, distributions)
        ran.append(command)
    assert len(ran) >= 3, ran
