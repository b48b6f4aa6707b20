"""Kontrol key rotation reaching kites that stay connected (kitecore.discovery.keys), and the
registration loop ending quietly when the kite stops; against the real Kontrol."""

from __future__ import annotations

import contextlib
import logging

import anyio
import pytest
from fake_kontrol import wait_until
from kite_auth_token import KeyPair, mint_token

from kitecore import AuthenticationError, Config, Kite
from kitecore.discovery.keys import KeyRefreshingAuthenticator
from kitecore.protocol.envelope import Authentication

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
def config_for(kontrol, kite_config):
    def build(username: str) -> Config:
        config = kite_config.copy()
        config.apply_kite_key(kontrol.create_kite_key(username))
        config.environment = "production"
        config.disable_authentication = False
        config.timeout = 5.0
        return config

    return build


@pytest.fixture
async def registered_kite(config_for, kite_plugins):
    """``await registered_kite(name, username, **renewer_settings)``: a running kite serving
    ``whoami``, kept registered by ``register_forever``."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(name: str, username: str, **settings: float) -> Kite:
            kite = Kite(name, "1.0.0", config=config_for(username), plugins=kite_plugins)
            kite.handle("whoami", whoami)
            for attribute, value in settings.items():
                setattr(kite.kontrol_client.key_renewer, attribute, value)
            await stack.enter_async_context(kite)
            await kite.register_forever()
            with anyio.fail_after(10):
                await kite.kontrol_client.registered.wait()
            return kite

        yield start


def count_get_key(kite: Kite) -> list[str]:
    """Record every ``getKey`` the kite's Kontrol client makes (the returned list grows)."""
    client = kite.kontrol_client
    calls: list[str] = []
    original = client.get_key

    async def counting() -> str:
        calls.append("getKey")
        return await original()

    client.get_key = counting  # type: ignore[method-assign]
    return calls


async def test_polling_picks_up_a_rotation_without_any_call(kontrol, registered_kite):
    math = await registered_kite("math", "bob", interval=0.1)
    renewer = math.kontrol_client.key_renewer
    assert math.config.kontrol_key.strip() == kontrol.public_key.strip()
    new_pair = await kontrol.rotate_key()
    await wait_until(lambda: math.config.kontrol_key.strip() == new_pair.public.strip())
    assert renewer.changes == 1


async def test_refused_token_refreshes_the_key_once_then_passes(
    kontrol, registered_kite, config_for, kite_plugins
):
    math = await registered_kite("math", "bob")  # default polling: far too slow to matter
    assert isinstance(math.authenticators["token"], KeyRefreshingAuthenticator)
    calls = count_get_key(math)
    await kontrol.rotate_key()
    async with Kite("caller", "1.0.0", config=config_for("alice"), plugins=kite_plugins) as caller:
        [client] = await caller.get_kites(username="bob", environment="production", name="math")
        async with client:
            with anyio.fail_after(10):
                assert await client.tell("whoami") == "alice"
                assert await client.tell("whoami") == "alice"
    assert calls == ["getKey"]
    assert math.config.kontrol_key.strip() == kontrol.public_key.strip()


async def test_forged_tokens_cost_at_most_one_get_key_per_interval(
    kontrol, registered_kite, config_for, kite_plugins
):
    math = await registered_kite("math", "bob", refresh_interval=60.0)
    calls = count_get_key(math)
    attacker = KeyPair.generate(id="attacker")
    forged = mint_token(
        issuer=kontrol.username,
        subject="mallory",
        audience="/bob/production/math",
        private_key=attacker.private,
    )
    foreign = mint_token(
        issuer="someone-else",
        subject="mallory",
        audience="/bob/production/math",
        private_key=attacker.private,
    )
    async with Kite("caller", "1.0.0", config=config_for("alice"), plugins=kite_plugins) as caller:
        for token in (forged, forged, forged, foreign):
            async with caller.new_client(math.url, auth=Authentication("token", token)) as client:
                with anyio.fail_after(10), pytest.raises(AuthenticationError):
                    await client.tell("whoami")
    assert calls == ["getKey"]  # one refresh, then rate-limited; a foreign issuer causes none
    assert math.config.kontrol_key.strip() == kontrol.public_key.strip()  # key unchanged


async def test_stopping_a_registered_kite_logs_no_warning(
    kontrol, config_for, kite_plugins, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="kitecore.discovery")
    kite = Kite("math", "1.0.0", config=config_for("bob"), plugins=kite_plugins)
    registrations: list[object] = []
    kite.kontrol_client.on_register(registrations.append)
    for run in (1, 2):  # and it registers again after a restart
        async with kite:
            await kite.register_forever()
            await wait_until(lambda run=run: len(registrations) == run)
    noisy = [
        r for r in caplog.records if r.name.startswith("kitecore.discovery") and r.levelno >= 30
    ]
    assert noisy == []
