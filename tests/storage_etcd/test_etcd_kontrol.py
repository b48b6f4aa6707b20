"""Kontrol on etcd, in-process: it starts while etcd is down, says so, and recovers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest
from kite_auth_token import plugin as token_plugin
from kite_kontrol.server import Kontrol
from kite_kontrol.settings import KontrolSettings
from kite_storage_etcd import EtcdStorage
from kite_storage_etcd.testing import EtcdCluster

from kitecore import Authentication, Config, GenericError, Kite, Query
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio

#: A storage call may take this long before Kontrol answers with an error (URL timeout + work).
ERROR_BOUND = 3.0


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def health(kontrol: Kontrol) -> tuple[int, str]:
    base = kontrol.url.removesuffix("/kite")
    return await anyio.to_thread.run_sync(http_get, f"{base}/health")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.timeout = 10.0
    config.username = "kontrol-admin"
    config.environment = "production"
    config.region = "eu"
    return config


async def test_kontrol_starts_without_etcd_reports_unhealthy_and_recovers(
    tmp_path: Path, config: Config, request: pytest.FixtureRequest, etcd_cache: str
) -> None:
    cluster = EtcdCluster(tmp_path / "etcd", size=1)  # ports reserved, not started yet
    request.addfinalizer(cluster.stop)
    plugins = load_plugins(names=("websocket", "etcd"), extra_plugins=[token_plugin])
    settings = KontrolSettings(
        key_ttl=3.0, heartbeat_interval=0.5, heartbeat_delay=1.0, update_interval=1.0,
        self_register_interval=0.5,
    )  # fmt: skip
    kontrol = Kontrol(
        storage=cluster.storage_url("/kontrol-test", timeout=1, cache=etcd_cache),
        config=config,
        plugins=plugins,
        settings=settings,
    )
    started = time.monotonic()
    async with kontrol:
        assert time.monotonic() - started < 5.0  # starting does not wait for etcd
        assert isinstance(kontrol.storage, EtcdStorage)
        assert not kontrol.healthy
        status, body = await health(kontrol)
        assert status == 503 and "storage unavailable" in json.loads(body)["err"]

        kite_config = config.copy()
        kite_config.username = "alice"
        kite = Kite("math", "1.0.0", config=kite_config, plugins=plugins)
        auth = Authentication("kiteKey", kontrol.create_kite_key("alice"))
        async with kite, kite.new_client(kontrol.url, auth=auth) as client:
            for method, args in (
                ("getKites", {"query": {"username": "alice"}}),
                ("register", {"url": kite.url}),
            ):
                started = time.monotonic()
                with pytest.raises(GenericError, match="internal error"):
                    await client.tell(method, args, timeout=10)
                assert time.monotonic() - started < ERROR_BOUND, method

            for member in cluster.members:
                member.start()
            await anyio.to_thread.run_sync(cluster.wait_healthy)
            with anyio.fail_after(10):
                while not kontrol.healthy:  # noqa: ASYNC110 - a flag, no event
                    await anyio.sleep(0.1)
            assert await health(kontrol) == (200, "ok")

            await client.tell("register", {"url": kite.url})
            answer = await client.tell("getKites", {"query": {"username": "alice"}})
            assert [entry["kite"]["id"] for entry in answer["kites"]] == [kite.id]
            assert len(await kontrol.storage.get(Query(name="kontrol"))) == 1  # itself, too
