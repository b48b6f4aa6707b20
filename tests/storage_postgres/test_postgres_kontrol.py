"""Kontrol on PostgreSQL, in process: it starts while the database is down, says it is
unhealthy, answers calls with an error instead of hanging, and recovers by itself."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.keyfiles import new_key_pair
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kite_storage_postgres.testing import TemporaryPostgres

from kitecore import Authentication, Config, Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.errors import KiteError
from kitecore.testing import CORE_PLUGINS

pytestmark = pytest.mark.anyio

SETTINGS = KontrolSettings(
    key_ttl=5.0,
    heartbeat_interval=0.5,
    heartbeat_delay=1.0,
    update_interval=1.0,
    self_register_interval=0.3,
)


@pytest.fixture
def plugins() -> PluginRegistry:
    return load_plugins(names=(*CORE_PLUGINS, "postgres"), extra_plugins=[token_plugin])


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 5.0
    config.username = "admin"
    config.environment = "pg"
    return config


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (4xx/5xx included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def health(kontrol: Kontrol) -> tuple[int, str]:
    base = kontrol.url.removesuffix("/kite")
    return await anyio.to_thread.run_sync(http_get, base + "/health")


async def wait_healthy(kontrol: Kontrol, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if kontrol.healthy:
            return
        await anyio.sleep(0.05)
    assert kontrol.healthy, kontrol.storage_error


async def test_kontrol_starts_without_storage_and_recovers(
    flaky_postgres: TemporaryPostgres, config: Config, plugins: PluginRegistry
) -> None:
    url = flaky_postgres.url(connect_timeout=2, schema=f"k_{uuid.uuid4().hex[:12]}")
    pair = new_key_pair()
    flaky_postgres.stop()
    try:
        kontrol = Kontrol(
            storage=url, key_pair=pair, config=config, plugins=plugins, settings=SETTINGS
        )
        async with contextlib.AsyncExitStack() as stack:
            started = time.monotonic()
            await stack.enter_async_context(kontrol)
            assert time.monotonic() - started < 10
            assert not kontrol.healthy
            status, body = await health(kontrol)
            assert status == 503, body
            assert "storage unavailable" in json.loads(body)["err"]
            assert flaky_postgres.password not in body

            kite_config = config.copy()
            kite_config.username = "alice"
            kite = await stack.enter_async_context(
                Kite("math", "1.0.0", config=kite_config, plugins=plugins)
            )
            auth = Authentication("kiteKey", kontrol.create_kite_key("alice"))
            client = await stack.enter_async_context(kite.new_client(kontrol.url, auth=auth))
            started = time.monotonic()
            with pytest.raises(KiteError, match="internal error"):
                await client.tell("getKites", {"query": {"name": "math"}})
            with pytest.raises(KiteError, match="internal error - register"):
                await client.tell("register", {"url": kite.url})
            assert time.monotonic() - started < 10

            flaky_postgres.start()
            await wait_healthy(kontrol)
            assert await health(kontrol) == (200, "ok")
            await kontrol.storage.get_key_by_id(pair.id)  # the key pair was stored late
            await client.tell("register", {"url": kite.url})
            answer = await client.tell("getKites", {"query": {"name": "math"}})
            assert [k["kite"]["id"] for k in answer["kites"]] == [kite.id]
    finally:
        if not flaky_postgres.running:
            flaky_postgres.start()


async def test_wrong_credentials_are_reported_with_the_password_redacted(
    postgres: TemporaryPostgres,
    config: Config,
    plugins: PluginRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    url = postgres.url(password="wrong-password-123")
    kontrol = Kontrol(
        storage=url, key_pair=new_key_pair(), config=config, plugins=plugins, settings=SETTINGS
    )
    async with kontrol:
        assert not kontrol.healthy
        error = kontrol.storage_error or ""
        assert "password authentication failed" in error
        assert f"postgresql://kite:***@127.0.0.1:{postgres.port}/kite" in error
        status, body = await health(kontrol)
        assert status == 503 and "password authentication failed" in body
        await anyio.sleep(0.5)  # a retry or two: still unhealthy, still serving
        assert not kontrol.healthy
    assert "wrong-password-123" not in caplog.text
    assert "wrong-password-123" not in body
    assert "***" in caplog.text
