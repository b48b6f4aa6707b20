"""A kite with no listening port, reached through the tunnel proxy by Python callers."""

from __future__ import annotations

import anyio
import pytest
from proxy_helpers import Farm

from kitecore import Authentication, AuthenticationError, DisconnectError, KiteError

pytestmark = pytest.mark.anyio

MIB = 1 << 20


async def test_a_kite_without_a_port_is_reached_through_kontrol(farm: Farm) -> None:
    proxy, _ = await farm.tunnel_proxy()
    kite = farm.kite()
    public, _ = await farm.behind_tunnel(kite)
    assert kite.server is None and kite.port == 0  # it listens nowhere
    assert public == f"http://{proxy.netloc}/proxy?kiteID={kite.id}"
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square", environment="proxytest")
    assert client.url == public  # Kontrol hands out the proxied URL
    async with client:
        assert await client.tell("square", 7) == 49
        assert await client.tell("kite.ping") == "pong"


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling", "XHRStreaming"])
async def test_big_messages_both_ways_over_each_sockjs_transport(
    farm: Farm, transport: str
) -> None:
    await farm.tunnel_proxy()
    kite = farm.kite()
    await farm.behind_tunnel(kite)
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    client.transport = transport
    async with client:
        assert await client.tell("length", "x" * MIB) == MIB
        assert len(await client.tell("big", MIB)) == MIB
        assert await client.tell("square", 3) == 9


async def test_calls_through_a_tunnel_are_authenticated(farm: Farm) -> None:
    """Go's kite trusts a tunnel it dialed; ours checks every caller's token."""
    await farm.tunnel_proxy()
    kite = farm.kite()
    public, _ = await farm.behind_tunnel(kite)
    caller = await farm.caller()
    async with caller.new_client(public) as anonymous:  # no token at all
        with pytest.raises(AuthenticationError):
            await anonymous.tell("square", 2)
    async with caller.new_client(public, auth=Authentication("token", "garbage")) as forged:
        with pytest.raises(AuthenticationError):
            await forged.tell("square", 2)


async def test_a_dead_kite_disconnects_its_callers_and_leaves_the_proxy(farm: Farm) -> None:
    proxy, _ = await farm.tunnel_proxy()
    kite = farm.kite()
    _, registration = await farm.behind_tunnel(kite)
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    async with client:
        assert await client.tell("square", 2) == 4
        assert kite.id in proxy.mappings
        registration.cancel()  # the kite goes away: its proxy connection and tunnels close
        with anyio.fail_after(10):
            while client.connected:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        with pytest.raises(KiteError) as failure:
            await client.tell("square", 2, timeout=2)
        assert isinstance(failure.value, (DisconnectError, KiteError))
    with anyio.fail_after(10):
        while kite.id in proxy.mappings:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_registrations_with_the_proxies_outlive_the_idle_timeout(farm: Farm) -> None:
    """A kite registered with a proxy makes no calls on that connection; the proxy keeps it
    however short its idle timeout (the idle timeout closes callers' connections only)."""
    farm.base_config.idle_timeout = 0.3  # proxies and kites made from now on
    tunnel, _ = await farm.tunnel_proxy()
    reverse, _ = await farm.reverse_proxy()
    hidden = farm.kite("hidden")
    listening = farm.kite("listening")
    tunnelled_url, _ = await farm.behind_tunnel(hidden)
    proxied_url, _ = await farm.behind_proxy(listening)
    registrations = [tunnel.mappings.get(hidden.id), reverse.mappings.get(listening.id)]
    assert None not in registrations
    await anyio.sleep(1.5)  # five idle timeouts
    assert tunnel.mappings.get(hidden.id) is registrations[0]
    assert reverse.mappings.get(listening.id) is registrations[1]
    caller = await farm.caller()
    for url in (tunnelled_url, proxied_url):
        async with caller.new_client(
            url, auth=Authentication("kiteKey", caller.config.kite_key)
        ) as client:
            assert await client.tell("square", 5) == 25
