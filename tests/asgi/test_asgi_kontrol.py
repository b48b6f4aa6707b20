"""Lifespan with a real Kontrol: a kite served by uvicorn or hypercorn registers its public
URL on startup (callers find it and call it through the ASGI server) and is gone from
Kontrol after shutdown. Needs kite-kontrol: listed in hatch.toml's core ignores."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from asgi_servers import listening_socket, serve_asgi
from kite_kontrol.testing import MakeKontrol

from kitecore import Kite
from kitecore.config import Config
from kitecore.discovery import NoKitesError
from kitecore.plugins import PluginRegistry
from kitecore.testing import square

pytestmark = pytest.mark.anyio


async def test_lifespan_registers_and_shutdown_deregisters(
    asgi_server: str,
    kite_config: Config,
    make_kontrol: MakeKontrol,
    token_plugins: PluginRegistry,
) -> None:
    kontrol = await make_kontrol()

    def config_for(username: str) -> Config:
        config = kite_config.copy()
        config.apply_kite_key(kontrol.create_kite_key(username))
        config.environment = "asgi"
        config.disable_authentication = False
        return config

    kite = Kite("math", "1.0.0", config=config_for("bob"), plugins=token_plugins)
    kite.handle("square", square)
    caller = Kite("caller", "1.0.0", config=config_for("alice"), plugins=token_plugins)
    query: dict[str, Any] = {"username": "bob", "environment": "asgi", "name": "math"}
    sock = listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/kite"
    async with caller, serve_asgi(kite.asgi_app(url=url), asgi_server, sock=sock):
        # startup completes once Kontrol has the kite
        assert kite.kontrol_client.registered.is_set()
        [client] = await caller.get_kites(**query)
        assert client.url == url
        async with client:
            assert await client.tell("square", 9) == 81
    with anyio.fail_after(10):  # Kontrol drops the kite when its connection closes
        async with caller:
            while True:
                try:
                    await caller.get_kites(**query)
                except NoKitesError:
                    break
                await anyio.sleep(0.05)
