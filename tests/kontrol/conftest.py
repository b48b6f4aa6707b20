"""Fixtures for the Kontrol tests: key pairs, a running Kontrol with short timings, kites."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kite_kontrol.keyfiles import new_key_pair
from kite_kontrol.machine import SecretPolicy
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kontrol_helpers import KONTROL_USER, SECRET

from kitecore import Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.storage import KeyPairRecord


@pytest.fixture(scope="session")
def kontrol_pair() -> KeyPairRecord:
    """The key pair of the Kontrol under test."""
    return new_key_pair()


@pytest.fixture(scope="session")
def second_pair() -> KeyPairRecord:
    """A pair to rotate to."""
    return new_key_pair()


@pytest.fixture(scope="session")
def evil_pair() -> KeyPairRecord:
    """A pair of a Kontrol nobody here trusts."""
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
def base_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 10.0
    config.environment = "production"
    config.region = "eu"
    return config


MakeKontrol = Callable[..., Awaitable[Kontrol]]


@pytest.fixture
async def make_kontrol(
    base_config: Config, plugins: PluginRegistry, settings: KontrolSettings, kontrol_pair
) -> AsyncIterator[MakeKontrol]:
    """Start Kontrols (memory storage, the session key pair); stopped when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**options: Any) -> Kontrol:
            config = base_config.copy()
            config.username = KONTROL_USER
            options.setdefault("key_pair", kontrol_pair)
            options.setdefault("settings", settings)
            options.setdefault("machine_policy", SecretPolicy(SECRET))
            options.setdefault("plugins", plugins)
            kontrol = Kontrol(config=config, **options)
            await stack.enter_async_context(kontrol)
            return kontrol

        yield factory


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
