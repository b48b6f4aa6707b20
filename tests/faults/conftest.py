"""Fixtures for fault-injection tests: plugins with the token authenticators, a loopback config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from faults_helpers import KontrolProcess, free_port, memory_kontrol
from kite_auth_token import plugin as token_plugin

from kitecore import Config
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import CORE_PLUGINS


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def plugins() -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators."""
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


@pytest.fixture
def base_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Loopback, free port, authentication on, KITE_HOME in the test's directory."""
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = False
    config.timeout = 3.0
    return config


@pytest.fixture
async def kontrol_process(tmp_path: Path, anyio_backend: str) -> AsyncIterator[KontrolProcess]:
    """A Kontrol process (same anyio backend as the test), stopped at the end of the test."""
    process = memory_kontrol(tmp_path, port=free_port(), backend=anyio_backend)
    try:
        await process.start()
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            await process.stop()
