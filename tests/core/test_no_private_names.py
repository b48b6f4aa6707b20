"""The core and the plugins use other libraries through their public API only.

Checked on the source, without importing it: no import of a private module of another package
(``anyio._backends``, ``anyio._core._eventloop``, ...), no private name taken from anyio,
asyncio, trio, sniffio, h11 or wsproto (``anyio._x``, ``from asyncio import _x``), and none of
the private attributes of their objects that an I/O layer is tempted to reach for (an anyio
stream's ``_transport``/``_protocol``/``read_queue``, an asyncio transport's ``_sock`` or
``_read_ready_cb``) on anything but the class's own ``self``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Our own packages (private names inside them are their own business).
OWN = ("kitecore", "kite_")
LIBRARIES = frozenset(("anyio", "asyncio", "trio", "sniffio", "h11", "wsproto", "ssl", "socket"))
#: Private attributes of anyio/asyncio objects (reading them from outside is what is banned).
FOREIGN_INTERNALS = frozenset(
    (
        "_transport",
        "_protocol",
        "read_queue",
        "_read_ready_cb",
        "_sock",
        "_raw_socket",
        "_ssl_protocol",
        "_loop",
        "_backend",
    )
)


def _sources() -> list[Path]:
    files = sorted((ROOT / "kitecore").rglob("*.py"))
    files += sorted((ROOT / "plugins").glob("*/src/**/*.py"))
    return files


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found: list[str] = []
    library_names: set[str] = set()
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if not top.startswith(OWN) and _private(alias.name):
                    found.append(f"{where}: import {alias.name}")
                if top in LIBRARIES:
                    library_names.add(alias.asname or top)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top.startswith(OWN):
                continue
            if _private(node.module):
                found.append(f"{where}: from {node.module} import ...")
            elif top in LIBRARIES:
                found += [
                    f"{where}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if _private(alias.name)
                ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        where = f"{name}:{node.lineno}"
        base = node.value
        if isinstance(base, ast.Name) and base.id in library_names:
            found.append(f"{where}: {ast.unparse(node)}")
        elif node.attr in FOREIGN_INTERNALS and not (
            isinstance(base, ast.Name) and base.id in ("self", "cls")
        ):
            found.append(f"{where}: {ast.unparse(node)}")
    return found


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import anyio\nimport asyncio as aio\n"
        "from anyio._backends._asyncio import SocketStream\n"
        "from anyio._core._eventloop import get_async_backend\n"
        "from asyncio import _get_running_loop\n"
        "x = anyio._core\ny = aio._get_running_loop()\n"
        "q = stream._protocol.read_queue\nstream._transport.set_protocol(p)\n"
        "self._transport.write(b'')\n"
    )
    assert len(_violations(sample)) == 7


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_of_other_libraries(path: Path) -> None:
    assert _violations(path) == []
