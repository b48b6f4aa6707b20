"""Faults: a proxy restarts, a proxy dies while another serves, two proxies share the load."""

from __future__ import annotations

import anyio
import pytest
from proxy_helpers import Farm

from kitecore.testing import free_port

pytestmark = pytest.mark.anyio


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await anyio.sleep(0.02)


@pytest.mark.parametrize("which", ["tunnel", "reverse"])
async def test_kites_come_back_through_a_restarted_proxy(farm: Farm, which: str) -> None:
    port = free_port()
    start = farm.tunnel_proxy if which == "tunnel" else farm.reverse_proxy
    _, stop = await start(port)
    kite = farm.kite() if which == "tunnel" else farm.kite(ip="127.0.0.2")
    if which == "tunnel":
        await farm.behind_tunnel(kite)
    else:
        await farm.behind_proxy(kite)
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    async with client:
        assert await client.tell("square", 2) == 4
    stop.cancel()
    with anyio.fail_after(20):
        while True:  # the old listener closes as its task ends
            try:
                restarted, _ = await start(port)
                break
            except OSError:
                await anyio.sleep(0.05)
    await wait_for(lambda: kite.id in restarted.mappings)
    (client,) = await caller.get_kites(name="square")
    async with client:
        assert await client.tell("square", 3) == 9


async def test_two_proxies_share_the_load_and_cover_for_each_other(farm: Farm) -> None:
    first, stop_first = await farm.tunnel_proxy()
    second, _ = await farm.tunnel_proxy()
    kites = [farm.kite() for _ in range(4)]
    for kite in kites:
        await farm.behind_tunnel(kite)
    assert len(first.mappings) == 2 and len(second.mappings) == 2
    caller = await farm.caller()
    clients = await caller.get_kites(name="square")
    assert len(clients) == 4
    for client in clients:
        async with client:
            assert await client.tell("square", 5) == 25
    stop_first.cancel()  # its kites find the other proxy through Kontrol
    await wait_for(lambda: len(second.mappings) == 4)

    async def every_kite_answers() -> None:
        clients = await caller.get_kites(name="square")
        assert {c.url for c in clients} == {second.proxy_url(k.id) for k in kites}
        for client in clients:
            async with client:
                assert await client.tell("square", 6) == 36

    with anyio.fail_after(20):
        while True:
            try:
                await every_kite_answers()
                break
            except AssertionError:
                await anyio.sleep(0.1)
