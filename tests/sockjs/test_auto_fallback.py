"""A client reaches every kite by the URL it prints, whichever transports each side has.

``KITE_TRANSPORT=auto`` (the default) tries the best transport that accepts the URL and falls
back when the server answers in another protocol: a client with the SockJS plugin reaches a kite
that serves raw WebSocket only, a client that remembers raw WebSocket for a URL whose kite now
serves SockJS only tries SockJS. Real kites on loopback ports, each with the transports named.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from dial_helpers import (
    RAW_ONLY,
    SOCKJS_ONLY,
    WITH_SOCKJS,
    counting_relay,
    plugins,
    serving,
)
from kite_transport_sockjs.client import MODES, dial

from kitecore import Config, DialError, Kite
from kitecore.testing import free_port
from kitecore.transport import TransportMismatchError

pytestmark = pytest.mark.anyio

CLIENTS = {"client-raw": RAW_ONLY, "client-sockjs": WITH_SOCKJS}
SERVERS = {"server-raw": RAW_ONLY, "server-both": WITH_SOCKJS, "server-sockjs": SOCKJS_ONLY}

#: The transport that carries the calls, for each (client, server) pair.
CARRIED_BY = {
    ("client-raw", "server-raw"): "websocket",
    ("client-raw", "server-both"): "websocket",
    ("client-sockjs", "server-raw"): "websocket",  # SockJS answered 404: raw WebSocket instead
    ("client-sockjs", "server-both"): "sockjs",
    ("client-sockjs", "server-sockjs"): "sockjs",
}


def caller(config: Config, names: tuple[str, ...]) -> Kite:
    return Kite("caller", "1.0.0", config=config.copy(), plugins=plugins(names))


@pytest.mark.parametrize("server_side", list(SERVERS))
@pytest.mark.parametrize("client_side", list(CLIENTS))
async def test_every_pairing_reaches_the_kite_by_its_url(
    kite_config: Config, client_side: str, server_side: str
) -> None:
    expected = CARRIED_BY.get((client_side, server_side))
    async with serving(kite_config, SERVERS[server_side]) as server:
        client_kite = caller(kite_config, CLIENTS[client_side])
        if expected is None:  # raw WebSocket only, against a kite that serves SockJS only
            with anyio.fail_after(20), pytest.raises(DialError) as info:
                async with client_kite.new_client(server.url):
                    pass
            assert f"can't connect to {server.url}" in info.value.message
            assert "serves SockJS only" in info.value.message
            assert "kite-transport-sockjs" in info.value.message
            return
        for _ in range(2):  # the second dial goes to what worked at once
            with anyio.fail_after(20):
                async with client_kite.new_client(server.url) as client:
                    assert client.connection is not None
                    assert client.connection.peer.transport == expected
                    assert await client.tell("square", 3) == 9


async def test_a_raw_websocket_kite_reached_once_costs_one_connection_next_time(
    kite_config: Config,
) -> None:
    async with (
        serving(kite_config, RAW_ONLY) as server,
        counting_relay(server.port) as relay,
    ):
        client_kite = caller(kite_config, WITH_SOCKJS)
        url = relay.url()
        with anyio.fail_after(20):
            async with client_kite.new_client(url) as client:
                assert await client.tell("square", 2) == 4
        probed = relay.count
        assert probed > 1  # SockJS was tried first, then raw WebSocket
        for dial in range(1, 4):
            with anyio.fail_after(20):
                async with client_kite.new_client(url) as client:
                    assert client.connection is not None
                    assert client.connection.peer.transport == "websocket"
                    assert await client.tell("square", 2) == 4
            assert relay.count == probed + dial  # straight to raw WebSocket, one connection


async def test_a_kite_that_changes_its_transports_is_probed_again(kite_config: Config) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/kite"
    client_kite = caller(kite_config, WITH_SOCKJS)
    # raw only; then SockJS only (the remembered raw WebSocket attempt is answered with SockJS's
    # greeting, so SockJS is tried); then raw only again (SockJS's /info answers 404)
    for server_names, expected in [
        (RAW_ONLY, "websocket"),
        (SOCKJS_ONLY, "sockjs"),
        (RAW_ONLY, "websocket"),
    ]:
        async with serving(kite_config, server_names, port=port) as server:
            assert server.url == url
            with anyio.fail_after(20):
                async with client_kite.new_client(url) as client:
                    assert client.connection is not None
                    assert client.connection.peer.transport == expected
                    assert await client.tell("square", 5) == 25


async def test_a_named_transport_does_not_fall_back(kite_config: Config) -> None:
    async with serving(kite_config, RAW_ONLY) as server:
        client_kite = caller(kite_config, WITH_SOCKJS)
        with anyio.fail_after(20), pytest.raises(DialError, match="no SockJS server at"):
            async with client_kite.new_client(server.url, transport="sockjs"):
                pass


async def test_a_refused_connection_is_not_tried_with_another_transport(
    kite_config: Config,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/kite"  # nothing listens
    client_kite = caller(kite_config, WITH_SOCKJS)
    with anyio.fail_after(20), pytest.raises(DialError) as info:
        async with client_kite.new_client(url):
            pass
    assert info.value.message == f"connection refused to {url}"


@pytest.mark.parametrize("mode", MODES)
async def test_the_sockjs_client_says_when_no_sockjs_is_served(
    kite_config: Config, mode: str
) -> None:
    async with serving(kite_config, RAW_ONLY) as server:
        with anyio.fail_after(20), pytest.raises(TransportMismatchError) as info:
            await dial(server.url, mode, handshake_timeout=10)
    assert str(info.value) == (
        f"no SockJS server at {server.url}: GET {server.url}/info answered 404"
    )


async def test_an_info_document_that_is_not_sockjs_is_no_sockjs(kite_config: Config) -> None:
    async def web_page(request: object, response: Any) -> None:
        await response.send(200, [("content-type", "text/html")], b"<html>hello</html>")

    async with serving(kite_config, RAW_ONLY) as server:
        server.handle_http("/kite/info", web_page)
        with anyio.fail_after(20), pytest.raises(TransportMismatchError, match="info document"):
            await dial(server.url, "auto", handshake_timeout=10)
        with anyio.fail_after(20):
            async with caller(kite_config, WITH_SOCKJS).new_client(server.url) as client:
                assert client.connection is not None
                assert client.connection.peer.transport == "websocket"
                assert await client.tell("square", 4) == 16
