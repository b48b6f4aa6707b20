"""Fixtures for kite-side Kontrol tests: key pairs, plugins with the token authenticators, and a
fake Kontrol written here (so these tests do not depend on kite_kontrol)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_kontrol import FakeKontrol
from kite_auth_token import KeyPair, create_kite_key
from kite_auth_token import plugin as token_plugin

from kitecore import Config
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import CORE_PLUGINS, MakeKite


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def kontrol_pair() -> KeyPair:
    """The key pair of the fake Kontrol."""
    return KeyPair.generate(id="kontrol-pair")


@pytest.fixture(scope="session")
def attacker_pair() -> KeyPair:
    """A key pair nobody trusts."""
    return KeyPair.generate(id="attacker-pair")


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators."""
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


@pytest.fixture
async def kontrol(make_kite: MakeKite, kite_config: Config, kontrol_pair: KeyPair) -> FakeKontrol:
    """A running fake Kontrol (a kite named ``kontrol``, authentication on)."""
    fake = FakeKontrol(kontrol_pair)
    config = kite_config.copy()
    config.disable_authentication = False
    config.username = fake.username
    config.kontrol_user = fake.username
    config.kontrol_key = kontrol_pair.public
    fake.kite = await make_kite("kontrol", "0.0.4", methods=fake.methods(), config=config)
    return fake


KiteConfigFor = Callable[..., Config]


@pytest.fixture
def config_for(kite_config: Config, kontrol_pair: KeyPair) -> KiteConfigFor:
    """``config_for(kontrol, username)``: a config holding a kite.key issued by ``kontrol``."""

    def build(kontrol: FakeKontrol, username: str = "alice", *, auth: bool = True) -> Config:
        config = kite_config.copy()
        config.apply_kite_key(
            create_kite_key(
                username=username,
                issuer=kontrol.username,
                kontrol_url=kontrol.kite.url,
                public_key=kontrol_pair.public,
                private_key=kontrol_pair.private,
            )
        )
        config.environment = "production"
        config.disable_authentication = not auth
        config.timeout = 5.0
        return config

    return build
