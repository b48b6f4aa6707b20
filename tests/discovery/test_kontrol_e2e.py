"""The kite side against the real Kontrol (kite_kontrol), over real sockets."""

from __future__ import annotations

import contextlib

import pytest

from kitecore import Config, Kite, Query
from kitecore.discovery import NoKitesError

kontrol_server = pytest.importorskip("kite_kontrol.server")

pytestmark = pytest.mark.anyio


async def whoami(r):
    return r.username


@pytest.fixture
async def kontrol(kite_config: Config, kite_plugins):
    config = kite_config.copy()
    config.username = "kontrol"
    config.disable_authentication = False
    async with kontrol_server.Kontrol(
        storage="memory://", config=config, plugins=kite_plugins
    ) as k:
        yield k


@pytest.fixture
async def kite_for(kontrol, kite_config, kite_plugins):
    """``await kite_for(name, username)``: a running kite holding a kite.key from Kontrol."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(name: str, username: str) -> Kite:
            config = kite_config.copy()
            config.apply_kite_key(kontrol.create_kite_key(username))
            config.environment = "production"
            config.disable_authentication = False
            kite = Kite(name, "1.0.0", config=config, plugins=kite_plugins)
            kite.handle("whoami", whoami)
            return await stack.enter_async_context(kite)

        yield start


async def test_register_discover_and_call(kontrol, kite_for):
    math = await kite_for("math", "bob")
    assert math.config.kontrol_url == kontrol.kontrol_url
    await math.register()

    caller = await kite_for("caller", "alice")
    [client] = await caller.get_kites(username="bob", environment="production", name="math")
    assert client.remote_kite == math.identity
    async with client:
        assert await client.tell("whoami") == "alice"

    token = await caller.get_token(math.identity)
    assert token.count(".") == 2
    assert await caller.get_key() == kontrol.public_key
    with pytest.raises(NoKitesError):
        await caller.get_kites(Query(username="nobody"))


async def test_key_rotation_reaches_kites_and_tokens_are_renewed(kontrol, kite_for):
    math = await kite_for("math", "bob")
    await math.register()
    caller = await kite_for("caller", "alice")
    [client] = await caller.get_kites(username="bob", name="math")
    async with client:
        assert await client.tell("whoami") == "alice"
        old_token = client.auth.key

        old_kite_key = math.config.kite_key
        await kontrol.rotate_key()
        result = await math.register()  # Kontrol re-signs math's kite.key with the new pair
        assert result.public_key == kontrol.public_key
        assert math.config.kontrol_key == kontrol.public_key
        assert result.kite_key and math.config.kite_key == result.kite_key != old_kite_key

        # math now refuses the old token ("token is expired"); the client renews and retries
        assert await client.tell("whoami") == "alice"
        assert client.auth.key != old_token
