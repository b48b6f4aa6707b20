"""Every async resource closes with ``aclose()`` (anyio's name); ``close()`` stays as an alias."""

from __future__ import annotations

from typing import Any

import pytest

from kitecore import Client, Config, Kite
from kitecore.connection import Connection
from kitecore.discovery.kontrol import KontrolClient
from kitecore.plugins import PluginRegistry
from kitecore.pool import Pool

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("resource", [Kite, Client, Connection, KontrolClient, Pool])
def test_aclose_with_close_as_its_alias(resource: type[Any]) -> None:
    assert callable(getattr(resource, "aclose", None)), resource
    assert callable(getattr(resource, "close", None)), resource


@pytest.mark.parametrize("how", ["aclose", "close"])
async def test_a_client_closes_by_either_name(
    how: str, kite_server: Kite, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(kite_server.url) as client:
        connection = client.connection
        assert connection is not None and await client.tell("square", 2) == 4
        await getattr(client, how)()
        assert client.closed and connection.closed
        await client.aclose()  # idempotent


async def test_the_context_manager_closes_with_aclose(
    kite_server: Kite, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    closed: list[str] = []

    class Recording(Client):
        async def aclose(self) -> None:
            closed.append("aclose")
            await super().aclose()

    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with Recording(caller, kite_server.url) as client:
        assert await client.tell("square", 3) == 9
    assert closed == ["aclose"] and client.closed
