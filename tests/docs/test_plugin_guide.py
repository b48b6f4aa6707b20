"""docs/writing-a-plugin.md stays true: its links resolve, its hook table names every hook
spec, and its authenticator example works on real kites."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from kitecore import Authentication, AuthenticationError, Config, Kite, hookspecs
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import MakeKite, whoami

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "writing-a-plugin.md"
TEMPLATE_README = REPO / "examples" / "plugin-template" / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("page", [GUIDE, TEMPLATE_README, REPO / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, f"no relative links found in {page}"
    missing = [t for t in local if not (page.parent / t.replace("\\_", "_")).exists()]
    assert missing == []


def test_every_hook_spec_is_in_the_guide() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    specs = [name for name in vars(hookspecs) if name.startswith("kite_")]
    assert specs
    assert [name for name in specs if f"`{name}(" not in text] == []


def authenticator_example() -> types.ModuleType:
    """The guide's authenticator example, run as the module of a plugin."""
    [code] = [block for block in python_blocks(GUIDE.read_text("utf-8")) if "SharedSecret" in block]
    module = types.ModuleType("shared_secret_plugin")
    exec(compile(code, str(GUIDE), "exec"), module.__dict__)
    return module


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    return load_plugins(names=("websocket",), extra_plugins=[authenticator_example()])


@pytest.mark.anyio
async def test_authenticator_example_works(
    make_kite: MakeKite, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    config = kite_config.copy()
    config.disable_authentication = False
    server = await make_kite("server", config=config)
    server.handle("whoami", whoami, auth=True)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)

    async def ask(key: str) -> Any:
        auth = Authentication("sharedSecret", key)
        async with caller.new_client(server.url, auth=auth) as client:
            return await client.tell("whoami")

    assert await ask("let-me-in") == "friend"
    with pytest.raises(AuthenticationError, match="wrong secret"):
        await ask("guess")
