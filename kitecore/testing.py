"""Pytest plugin with fixtures for testing kites (registered through ``pytest11``).

Fixtures:

- ``kite_plugins``: a plugin registry with only the core's built-ins (``websocket``,
  ``loopback``), so a test never picks up whatever else happens to be installed.
  Override it in a ``conftest.py`` to test with more plugins.
- ``kite_config``: a :class:`Config` for loopback tests (127.0.0.1, a free port,
  authentication off, ``KITE_HOME`` in a temporary directory).
- ``make_kite``: an async factory ``await make_kite(name="test", methods={...})`` that
  starts a kite and stops it when the test ends.
- ``kite_server`` / ``kite_client``: a running kite serving ``square`` and ``echo``, and
  a client dialed to it.

Helpers: :func:`free_port` (a loopback TCP port for a server a test starts itself), and the
methods :func:`square`, :func:`echo` and :func:`whoami` to serve.

The async fixtures need an anyio test (``@pytest.mark.anyio``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

from kitecore.client import Client
from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry, load_plugins

CORE_PLUGINS = ("websocket", "loopback")

MakeKite = Callable[..., Awaitable[Kite]]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to it soon, or it may be taken)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """Only the core's built-in plugins."""
    return load_plugins(names=CORE_PLUGINS)


@pytest.fixture
def kite_config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A config for tests on loopback, isolated from the user's ``~/.kite``."""
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = True
    config.timeout = 10.0
    return config


async def square(r: Any) -> float:
    """``square(n)``: the seed's example method."""
    a = r.args.one(float)
    return a * a


async def echo(r: Any) -> list[Any]:
    """``echo(*args)``: the arguments back."""
    return r.args.list()


async def whoami(r: Any) -> str:
    """``whoami()``: the caller's username (the authenticated one when the method needs auth)."""
    return str(r.username)


@pytest.fixture
async def make_kite(kite_config: Config, kite_plugins: PluginRegistry) -> AsyncIterator[MakeKite]:
    """Start kites on free loopback ports; they stop when the test ends.

    Each kite serves in a task of its own (owned by this fixture), so kites started in a test
    body never nest their task groups inside other fixtures' contexts.
    """

    async def serve(kite: Kite, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with kite:
            task_status.started()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:

        async def factory(
            name: str = "test",
            version: str = "1.0.0",
            *,
            methods: dict[str, Any] | None = None,
            config: Config | None = None,
        ) -> Kite:
            kite = Kite(name, version, config=config or kite_config.copy(), plugins=kite_plugins)
            for method_name, handler in (methods or {}).items():
                kite.handle(method_name, handler)
            await group.start(serve, kite)
            return kite

        yield factory
        group.cancel_scope.cancel()


@pytest.fixture
async def kite_server(make_kite: MakeKite) -> Kite:
    """A running kite serving ``square`` and ``echo``."""
    return await make_kite("server", methods={"square": square, "echo": echo})


@pytest.fixture
async def kite_client(
    kite_server: Kite, kite_config: Config, kite_plugins: PluginRegistry
) -> AsyncIterator[Client]:
    """A client of ``kite_server``, dialed over the raw WebSocket transport."""
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(kite_server.url) as client:
        yield client
