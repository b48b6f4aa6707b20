"""Reaching Kontrol: a call fails at once when Kontrol refuses connections and within its
timeout when Kontrol does not answer; only registration keeps retrying (with backoff).

A (fake) Kontrol on a fixed loopback port that the tests start and stop, real sockets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from fake_kontrol import FakeKontrol, wait_until
from kite_auth_token import KeyPair, create_kite_key

from kitecore import Config, DialError, Kite, KiteTimeoutError
from kitecore.backoff import Backoff
from kitecore.config import write_kite_key
from kitecore.plugins import PluginRegistry
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio


def kontrol_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/kite"


def kite_key_for(port: int, pair: KeyPair, username: str = "alice") -> str:
    """A kite.key issued by the Kontrol that will serve on ``port``."""
    return create_kite_key(
        username=username,
        issuer="kontrol",
        kontrol_url=kontrol_url(port),
        public_key=pair.public,
        private_key=pair.private,
    )


def caller_config(kite_config: Config, port: int, pair: KeyPair, timeout: float) -> Config:
    config = kite_config.copy()
    config.apply_kite_key(kite_key_for(port, pair))
    config.environment = "production"
    config.timeout = timeout
    return config


@asynccontextmanager
async def fake_kontrol_on(
    port: int, pair: KeyPair, kite_config: Config, plugins: PluginRegistry
) -> AsyncIterator[FakeKontrol]:
    """A fake Kontrol serving on ``port`` for the block (then its port refuses connections)."""
    fake = FakeKontrol(pair)
    config = kite_config.copy()
    config.port = port
    config.disable_authentication = False
    config.username = config.kontrol_user = fake.username
    config.kontrol_key = pair.public
    fake.kite = Kite("kontrol", "0.0.4", config=config, plugins=plugins)
    for name, handler in fake.methods().items():
        fake.kite.handle(name, handler)
    async with fake.kite:
        assert fake.kite.url == kontrol_url(port)
        yield fake


async def test_every_kontrol_call_reports_a_refused_connection_at_once(
    make_kite, kite_config, kontrol_pair
):
    port = free_port()  # nothing listens there
    config = caller_config(kite_config, port, kontrol_pair, timeout=60)
    kite = await make_kite("lonely", config=config)
    expected = f"can't reach Kontrol: connection refused to {kontrol_url(port)}"
    for call in (
        lambda: kite.register(),
        lambda: kite.get_kites(username="bob"),
        lambda: kite.kontrol_client.get_token({"username": "bob"}),
        lambda: kite.kontrol_client.get_key(),
    ):
        with anyio.fail_after(20), pytest.raises(DialError) as info:
            await call()
        assert info.value.message == expected


async def test_a_silent_kontrol_is_bounded_by_the_call_timeout(
    make_kite, kite_config, kontrol_pair
):
    # a listener that never answers: TCP connects (backlog), the handshake gets no reply
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        config = caller_config(kite_config, port, kontrol_pair, timeout=0.5)
        kite = await make_kite("patient", config=config)
        with anyio.fail_after(10), pytest.raises(KiteTimeoutError) as info:
            await kite.get_kites(username="bob")
    assert info.value.message == f"can't connect to Kontrol at {kontrol_url(port)} in 0.5s"


async def test_register_forever_keeps_retrying_until_kontrol_serves(
    make_kite, kite_config, kontrol_pair, kite_plugins
):
    port = free_port()
    math = await make_kite("math", config=caller_config(kite_config, port, kontrol_pair, 5))
    kontrol_client = math.kontrol_client
    await kontrol_client.register_forever(backoff=Backoff(initial=0.05, maximum=0.2))
    # the first attempts are refused: each is reported, then retried with backoff
    await wait_until(lambda: kontrol_client.client and kontrol_client.client.last_dial_error)
    assert "connection refused" in kontrol_client.client.last_dial_error.message
    assert not kontrol_client.registered.is_set()
    async with fake_kontrol_on(port, kontrol_pair, kite_config, kite_plugins) as kontrol:
        with anyio.fail_after(10):
            await kontrol_client.registered.wait()
        assert [entry.url for entry in kontrol.registrations] == [math.url]
        await kontrol_client.close()


async def test_a_lost_kontrol_is_reported_at_once_and_found_again_at_once(
    make_kite, kite_config, kontrol_pair, kite_plugins
):
    port = free_port()
    config = caller_config(kite_config, port, kontrol_pair, timeout=60)
    async with fake_kontrol_on(port, kontrol_pair, kite_config, kite_plugins):
        caller = await make_kite("caller", config=config)
        await caller.register()
        client = caller.kontrol_client.client
        assert client is not None and client.connected
        # after a drop the client reconnects by itself; make its waits between attempts long,
        # so that only a call asking for a new attempt can reach Kontrol in this test's time
        client.backoff = Backoff(initial=1000, maximum=1000, randomization=0)
    await wait_until(lambda: not client.connected and client.last_dial_error is not None)

    with anyio.fail_after(20), pytest.raises(DialError) as info:
        await caller.get_kites(username="alice")
    assert info.value.message == f"can't reach Kontrol: connection refused to {kontrol_url(port)}"

    async with fake_kontrol_on(port, kontrol_pair, kite_config, kite_plugins) as kontrol:
        with anyio.fail_after(20):
            await caller.register()
        assert [entry.url for entry in kontrol.registrations] == [caller.url]
        assert caller.kontrol_client.client is client  # the same reconnecting client
        await caller.kontrol_client.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("plugins", ["websocket", "websocket,sockjs"])
async def test_kite_query_says_connection_refused_at_once(tmp_path: Path, kontrol_pair, plugins):
    port = free_port()
    home = tmp_path / "home"
    write_kite_key(kite_key_for(port, kontrol_pair), home / "kite.key")
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": plugins, "KITE_TIMEOUT": "60"}
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "kitecore.cli", "query", "--username", "alice"],
            env=env,
            check=False,
        )
    assert done.returncode == 1
    expected = f"can't connect to Kontrol at {kontrol_url(port)}: connection refused"
    assert expected.encode() in done.stderr
    assert b"Traceback" not in done.stderr
