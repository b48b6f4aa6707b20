"""SockJS over TLS: a kite serving https (the SockJS routes share the kite's TLS server) is
called over SockJS's websocket, xhr-polling and xhr-streaming sub-transports, verified
against the test CA; an unverified server and a missing client certificate are refused."""

from __future__ import annotations

import pytest
from dial_helpers import WITH_SOCKJS, plugins, serving
from tls_certs import TLSFiles

from kitecore import Config, Kite
from kitecore.client import DialError

pytestmark = pytest.mark.anyio

SUB_TRANSPORTS = ("sockjs", "WebSocket", "XHRPolling", "XHRStreaming")


def tls_config(tls: TLSFiles, *, mutual: bool = False) -> Config:
    config = Config()
    config.ip = "127.0.0.1"
    config.disable_authentication = True
    config.timeout = 10.0
    config.tls_cert_file, config.tls_key_file = tls.server_cert, tls.server_key
    if mutual:
        config.tls_client_ca_file = tls.ca_file
    return config


def caller(tls: TLSFiles | None, *, client_cert: bool = False) -> Kite:
    config = Config()
    config.timeout = 10.0
    if tls is not None:
        config.tls_ca_file = tls.ca_file
        if client_cert:
            config.tls_client_cert_file = tls.client_cert
            config.tls_client_key_file = tls.client_key
    return Kite("caller", "1.0.0", config=config, plugins=plugins(WITH_SOCKJS))


@pytest.mark.parametrize("transport", SUB_TRANSPORTS)
async def test_sockjs_over_https(tls_files: TLSFiles, transport: str) -> None:
    async with serving(tls_config(tls_files), WITH_SOCKJS) as kite:
        assert kite.url.startswith("https://")
        async with caller(tls_files).new_client(kite.url, transport=transport) as client:
            assert await client.tell("square", 12) == 144
            assert client.connection is not None
            assert client.connection.peer.transport == transport


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling"])
async def test_sockjs_verifies_the_server(tls_files: TLSFiles, transport: str) -> None:
    async with serving(tls_config(tls_files), WITH_SOCKJS) as kite:
        with pytest.raises(DialError, match="certificate was refused"):
            async with caller(None).new_client(kite.url, transport=transport) as client:
                await client.tell("square", 2)


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling", "XHRStreaming"])
async def test_sockjs_with_mutual_tls(tls_files: TLSFiles, transport: str) -> None:
    async with serving(tls_config(tls_files, mutual=True), WITH_SOCKJS) as kite:
        with pytest.raises(DialError):
            async with caller(tls_files).new_client(kite.url, transport=transport) as client:
                await client.tell("square", 2)
        with_cert = caller(tls_files, client_cert=True)
        async with with_cert.new_client(kite.url, transport=transport) as client:
            assert await client.tell("square", 3) == 9
