"""Fixtures for the Kontrol tests: a running Kontrol with short timings, kites.

The key pairs and the in-process Kontrol come from kite_kontrol.testing (a pytest plugin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kite_kontrol.keyfiles import new_key_pair
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kite_kontrol.testing import MakeKontrol

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.storage import KeyPairRecord


@pytest.fixture(scope="session")
def second_pair() -> KeyPairRecord:
    """A pair to rotate to (``kontrol_pair`` and ``evil_pair`` come from kite_kontrol.testing)."""
    return new_key_pair()


@pytest.fixture
def plugins() -> PluginRegistry:
    return load_plugins(names=("websocket", "loopback"))


@pytest.fixture
def settings() -> KontrolSettings:
    """Short timings so heartbeats and expiry show within a second."""
    return KontrolSettings(
        key_ttl=0.8,
        heartbeat_interval=0.1,
        heartbeat_delay=0.2,
        update_interval=0.25,
        heartbeat_call_timeout=4.0,
        self_register_interval=0.3,
    )


@pytest.fixture
def base_config(kite_config: Config) -> Config:
    config = kite_config.copy()
    config.disable_authentication = False
    config.environment = "production"
    config.region = "eu"
    return config


@pytest.fixture
def make_kontrol(
    make_kontrol: MakeKontrol,
    base_config: Config,
    plugins: PluginRegistry,
    settings: KontrolSettings,
) -> MakeKontrol:
    """kite_kontrol.testing's ``make_kontrol`` with this folder's config, plugins and timings."""

    async def factory(**options: Any) -> Kontrol:
        options.setdefault("config", base_config)
        options.setdefault("settings", settings)
        options.setdefault("plugins", plugins)
        return await make_kontrol(**options)

    return factory


@pytest.fixture
async def kontrol(make_kontrol: MakeKontrol) -> Kontrol:
    return await make_kontrol()


@pytest.fixture
def make_kite(base_config: Config, plugins: PluginRegistry) -> Callable[..., Kite]:
    """A (not started) kite with the given identity fields."""

    def factory(name: str = "math", version: str = "1.0.0", **fields: str) -> Kite:
        config = base_config.copy()
        config.username = fields.pop("username", "alice")
        for key, value in fields.items():
            setattr(config, key, value)
        return Kite(name, version, config=config, plugins=plugins)

    return factory
