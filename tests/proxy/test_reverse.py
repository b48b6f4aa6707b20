"""A kite on an address callers do not use (127.0.0.2), reached through the reverse proxy."""

from __future__ import annotations

import anyio
import pytest
from kite_proxy import register_to_proxy
from proxy_helpers import Farm

from kitecore import Authentication, GenericError, KiteError
from kitecore.http import HTTPClient, HTTPRequest, HTTPResponse

pytestmark = pytest.mark.anyio

MIB = 1 << 20


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling", "XHRStreaming"])
async def test_kontrol_hands_out_the_proxied_url(farm: Farm, transport: str) -> None:
    proxy, _ = await farm.reverse_proxy()
    kite = farm.kite(ip="127.0.0.2")
    public, _ = await farm.behind_proxy(kite)
    assert kite.url.startswith("http://127.0.0.2:")
    assert public == f"http://{proxy.netloc}/proxy/{kite.id}"
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square", environment="proxytest")
    assert client.url == public
    client.transport = transport
    async with client:
        assert await client.tell("square", 5) == 25
        assert await client.tell("length", "x" * MIB) == MIB
        assert len(await client.tell("big", MIB)) == MIB


async def test_a_pool_calls_through_the_proxy(farm: Farm) -> None:
    await farm.reverse_proxy()
    for _ in range(2):
        await farm.behind_proxy(farm.kite(ip="127.0.0.2"))
    caller = await farm.caller()
    async with caller.pool({"name": "square", "environment": "proxytest"}) as pool:
        results = [await pool.tell("square", n) for n in range(6)]
    assert results == [n * n for n in range(6)]


async def test_an_unknown_kite_id_is_an_http_error_not_a_hang(farm: Farm) -> None:
    proxy, _ = await farm.reverse_proxy()
    async with HTTPClient(timeout=5) as http:
        answer = await http.request("GET", f"http://{proxy.netloc}/proxy/nobody/info")
        assert answer.status == 404
        answer = await http.request("POST", f"http://{proxy.netloc}/proxy/nobody/1/2/xhr")
        assert answer.status == 404
    caller = await farm.caller()
    with pytest.raises(KiteError, match="can't connect"):  # refused at once
        async with caller.new_client(f"http://{proxy.netloc}/proxy/nobody") as client:
            await client.tell("square", 2, timeout=5)


async def test_a_kite_cannot_register_for_another_kites_id(farm: Farm) -> None:
    proxy, _ = await farm.reverse_proxy()
    victim = farm.kite(ip="127.0.0.2")
    await farm.behind_proxy(victim)
    attacker = await farm.caller()
    # the attacker claims the victim's kite id in the request: its connection is pinned to its own
    async with attacker.new_client(proxy.url) as client:
        client.auth = Authentication("kiteKey", attacker.config.kite_key)
        attacker.id = victim.id  # now its calls name the victim's id
        with pytest.raises(GenericError, match="already registered"):
            await client.tell("register", "http://127.0.0.1:1/kite")
    assert proxy.mappings.get(victim.id).target == victim.url  # type: ignore[union-attr]


async def test_a_connection_cannot_switch_kite_ids(farm: Farm) -> None:
    proxy, _ = await farm.reverse_proxy()
    attacker = await farm.caller()
    async with attacker.new_client(proxy.url) as client:
        client.auth = Authentication("kiteKey", attacker.config.kite_key)
        await client.tell("kite.ping")  # pins the connection to the attacker's id
        attacker.id = "someone-else"
        with pytest.raises(GenericError, match="first called as"):
            await client.tell("register", "http://127.0.0.1:1/kite")
    assert "someone-else" not in proxy.mappings


async def test_a_dead_kite_leaves_the_proxy(farm: Farm) -> None:
    proxy, _ = await farm.reverse_proxy()
    kite = farm.kite(ip="127.0.0.2")
    _, registration = await farm.behind_proxy(kite)
    assert kite.id in proxy.mappings
    registration.cancel()
    with anyio.fail_after(10):
        while kite.id in proxy.mappings:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_callers_of_a_dead_kite_get_disconnect(farm: Farm) -> None:
    proxy, _ = await farm.reverse_proxy()
    kite = farm.kite(ip="127.0.0.2")
    _, serving = await farm.start(lambda: kite)
    _, registration = await farm.run(
        lambda task_status: register_to_proxy(kite, task_status=task_status)
    )
    caller = await farm.caller()
    (client,) = await caller.get_kites(name="square")
    client.transport = "WebSocket"
    async with client:
        assert await client.tell("square", 2) == 4
        registration.cancel()
        serving.cancel()  # the kite dies: the proxy's websocket to it ends, and so does ours
        with anyio.fail_after(10):
            while client.connected:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    with anyio.fail_after(10):
        while kite.id in proxy.mappings:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def test_http_is_forwarded_with_query_body_cookies_and_forwarding_headers(
    farm: Farm,
) -> None:
    proxy, _ = await farm.reverse_proxy()
    kite = farm.kite(ip="127.0.0.2")
    seen: list[HTTPRequest] = []

    async def echo(request: HTTPRequest, response: HTTPResponse) -> None:
        seen.append(request)
        await response.send(201, [("content-type", "text/plain"), ("x-echo", "1")], request.body)

    kite.handle_http("/echo", echo)
    await farm.start(lambda: kite)
    root = kite.url.removesuffix("/kite")
    await farm.run(lambda task_status: register_to_proxy(kite, root, task_status=task_status))
    async with HTTPClient(timeout=5) as http:
        answer = await http.request(
            "POST",
            f"{proxy.proxy_url(kite.id)}/echo?a=1&b=two",
            headers=[("Cookie", "JSESSIONID=abc"), ("X-Forwarded-For", "10.1.2.3")],
            body=b"payload",
        )
    assert (answer.status, answer.body, answer.headers.get("x-echo")) == (201, b"payload", "1")
    (request,) = seen
    assert request.path == "/echo" and request.query == {"a": ["1"], "b": ["two"]}
    assert request.headers.get("cookie") == "JSESSIONID=abc"
    assert request.headers.get("x-forwarded-for") == "10.1.2.3, 127.0.0.1"
    assert request.headers.get("x-forwarded-proto") == "http"
