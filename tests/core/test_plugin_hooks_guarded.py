"""A plugin's lifecycle hook that raises is logged with the plugin's name, like a user's hook, and
never stops a kite from starting, accepting a connection, serving calls or stopping."""

from __future__ import annotations

import logging

import anyio
import pytest

from kitecore import Client, Config, Kite, hookimpl
from kitecore.plugins import load_plugins
from kitecore.testing import CORE_PLUGINS, square

pytestmark = pytest.mark.anyio


class Broken:
    """A plugin whose every lifecycle hook raises."""

    @hookimpl
    def kite_started(self, kite: Kite, url: str) -> None:
        raise RuntimeError("started hook broke")

    @hookimpl
    def kite_connected(self, kite: Kite, client: Client) -> None:
        raise RuntimeError("connected hook broke")

    @hookimpl
    def kite_disconnected(self, kite: Kite, client: Client) -> None:
        raise RuntimeError("disconnected hook broke")

    @hookimpl
    def kite_stopped(self, kite: Kite) -> None:
        raise RuntimeError("stopped hook broke")


class Observer:
    """A well-behaved plugin, called after Broken (pluggy calls the last registered first)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.server_disconnected = anyio.Event()

    @hookimpl
    def kite_started(self, kite: Kite, url: str) -> None:
        self.seen.append(("started", kite.name))

    @hookimpl
    def kite_connected(self, kite: Kite, client: Client) -> None:
        assert isinstance(client, Client)
        self.seen.append(("connected", kite.name))

    @hookimpl
    def kite_disconnected(self, kite: Kite, client: Client) -> None:
        self.seen.append(("disconnected", kite.name))
        if kite.name == "server":
            self.server_disconnected.set()

    @hookimpl
    def kite_stopped(self, kite: Kite) -> None:
        self.seen.append(("stopped", kite.name))


async def test_a_raising_plugin_hook_is_logged_and_the_kite_serves_on(
    kite_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    observer = Observer()
    plugins = load_plugins(names=CORE_PLUGINS, extra_plugins=[observer, Broken()])
    server = Kite("server", "1.0.0", config=kite_config.copy(), plugins=plugins)
    server.handle("square", square)
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=plugins)

    with caplog.at_level(logging.ERROR, logger="kitecore.plugins"), anyio.fail_after(30):
        async with server:
            async with caller.new_client(server.url) as client:
                assert await client.tell("square", 3) == 9
            await observer.server_disconnected.wait()

    assert sorted(observer.seen) == sorted(
        [
            ("started", "server"),
            ("connected", "caller"),
            ("connected", "server"),
            ("disconnected", "caller"),
            ("disconnected", "server"),
            ("stopped", "server"),
        ]
    )
    logged = [r for r in caplog.records if r.name == "kitecore.plugins"]
    for hook in ("kite_started", "kite_connected", "kite_disconnected", "kite_stopped"):
        assert any(
            r.getMessage() == f"plugin 'Broken' raised in {hook}" and r.exc_info for r in logged
        ), hook
    assert {type(r.exc_info[1]) for r in logged if r.exc_info} == {RuntimeError}
