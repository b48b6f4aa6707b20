"""Every ``pip install`` the project prints or documents works from a checkout.

None of our distributions is on a package index, so a hint such as ``pip install
kitecore[kontrol]`` or ``pip install kite-pickers`` fails for a user. This reads the hints in the
READMEs and in the string literals of the code (core, plugins, examples, benchmarks) and
requires each to name our distributions by their folder in the checkout (``.``,
``./plugins/NAME``), folders that exist; third-party packages may be named as usual.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from built_wheels import PLUGIN_FOLDERS
from packaging.utils import canonicalize_name
from venvs import REPO

#: Our distributions: they are installed from their folders, never by name.
OURS = {"kitecore", "kite-kontrol", *PLUGIN_FOLDERS}


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted(REPO.glob("plugins/*/README.md"))]


def sources() -> list[Path]:
    found = [*REPO.glob("kitecore/**/*.py"), *REPO.glob("plugins/*/src/**/*.py")]
    found += [*REPO.glob("examples/**/*.py"), *REPO.glob("bench/*.py")]
    return sorted(found)


def hints_in_text(text: str) -> list[str]:
    """What follows each ``pip install`` up to the end of its line, comment, quote or backtick."""
    return [match.strip() for match in re.findall(r"pip install ([^\n#`'\"]*)", text)]


def hints_in_source(source: str) -> list[str]:
    """The ``pip install`` hints in a module's string literals (f-strings included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += hints_in_text(node.value)
    return found


def problems(hint: str) -> list[str]:
    """Why ``pip install HINT`` cannot work from a checkout (nothing: it can)."""
    wrong = []
    for word in hint.split():
        word = word.strip("\"'")
        if word.startswith("-") or not word:
            continue
        if word.startswith((".", "/")) or "/" in word:
            path = re.sub(r"\[.*\]$", "", word)
            relative = path.removeprefix("./")
            exists = any(REPO.glob(relative)) if "*" in relative else (REPO / relative).exists()
            if not exists:
                wrong.append(f"{word}: no such path in the checkout")
            continue
        name = canonicalize_name(re.split(r"[\[<>=!~;@ ]", word)[0])
        if name in OURS:
            wrong.append(f"{word}: not on any index; name its folder in the checkout")
    return wrong


def collect() -> list[tuple[str, str]]:
    hints = []
    for path in documents():
        hints += [(path.relative_to(REPO).as_posix(), h) for h in hints_in_text(path.read_text())]
    for path in sources():
        relative = path.relative_to(REPO).as_posix()
        hints += [(relative, hint) for hint in hints_in_source(path.read_text())]
    return hints


def test_every_install_hint_works_from_a_checkout() -> None:
    hints = collect()
    assert any(where == "README.md" for where, _ in hints), "the README says how to install"
    wrong = [
        f"{where}: pip install {hint}: {why}" for where, hint in hints for why in problems(hint)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("hint", "ok"),
    [
        ("kitecore[kontrol]", False),
        ("kitecore kite-auth-token", False),
        ("Kite_Pickers>=0.1", False),
        (". ./plugins/kite-auth-token", True),
        ('".[all]" ./plugins/*', True),
        ("./plugins/kite-nonexistent", False),
        ("--quiet hatch", True),
    ],
)
def test_the_check_itself(hint: str, ok: bool) -> None:
    assert (problems(hint) == []) is ok
