"""``Client.ensure_connected``: one attempt per URL, its failure reported at once (refused) or
after the timeout (a silent listener); a reconnecting client then keeps its connection up."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from kitecore import DialError, Kite
from kitecore.client import DialTimeoutError

pytestmark = pytest.mark.anyio


async def closed_url(kite_config, kite_plugins) -> str:
    """The URL of a kite that has stopped: its port refuses connections."""
    async with Kite("gone", "1.0.0", config=kite_config.copy(), plugins=kite_plugins) as gone:
        return gone.url


async def test_a_refused_connection_is_reported_at_once(kite_config, kite_plugins):
    url = await closed_url(kite_config, kite_plugins)
    config = kite_config.copy()
    config.handshake_timeout = 60
    caller = Kite("caller", "1.0.0", config=config, plugins=kite_plugins)
    async with caller:
        client = caller.new_client(url, reconnect=True)
        with anyio.fail_after(20), pytest.raises(DialError) as info:
            await client.ensure_connected(60)
        assert info.value.message == f"connection refused to {url}"
        assert client.last_dial_error is info.value
        assert not client.connected


async def test_a_silent_listener_is_bounded_by_the_timeout(kite_config, kite_plugins):
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        url = f"http://127.0.0.1:{port}/kite"
        async with Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins) as k:
            client = k.new_client(url)
            with anyio.fail_after(10), pytest.raises(DialTimeoutError) as info:
                await client.ensure_connected(0.3)
    assert info.value.message == f"can't connect to {url}: timed out after 0.3s"
    assert isinstance(info.value, TimeoutError)


async def test_each_url_is_tried_once_and_concurrent_callers_share_the_dial(
    make_kite, kite_config, kite_plugins
):
    dead_url = await closed_url(kite_config, kite_plugins)
    alive = await make_kite("alive")
    caller = await make_kite("caller")
    client = caller.new_client(f"{dead_url},{alive.url}", reconnect=True)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(client.ensure_connected, 10)
    assert client.url == alive.url
    assert client.last_dial_error is None
    assert await client.tell("kite.ping") == "pong"
    assert len(alive._clients) == 1  # five callers, one connection

    # it reconnects by itself after a drop, as dial_forever does
    first = client.connection
    reconnected = anyio.Event()
    client.on_connect(lambda _client: reconnected.set())
    for accepted in list(alive._clients):
        await accepted.close()
    with anyio.fail_after(20):
        await reconnected.wait()
    assert client.connection is not first
    assert await client.tell("kite.ping") == "pong"
    await client.close()


async def test_all_urls_refusing_are_reported_together(kite_config, kite_plugins):
    first = await closed_url(kite_config, kite_plugins)
    second = await closed_url(kite_config, kite_plugins)
    async with Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins) as k:
        client = k.new_client([first, second])
        with anyio.fail_after(20), pytest.raises(DialError) as info:
            await client.ensure_connected(60)
    assert info.value.message == (f"connection refused to {first}; connection refused to {second}")
