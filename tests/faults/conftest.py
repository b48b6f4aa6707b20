"""Fixtures for fault-injection tests: plugins with the token authenticators, a loopback config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from faults_helpers import KontrolProcess, memory_kontrol

from kitecore import Config
from kitecore.plugins import PluginRegistry
from kitecore.testing import free_port


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def plugins(token_plugins: PluginRegistry) -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators (kite_kontrol.testing)."""
    return token_plugins


@pytest.fixture
def base_config(kite_config: Config) -> Config:
    """Loopback, free port, authentication on, KITE_HOME in the test's directory."""
    config = kite_config.copy()
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
