"""Both proxies serve TLS (https/wss, and what they hand out says so) and dial TLS kites behind
them with the kite's own verification settings (``kite proxy``/``kite tunnelproxy`` with
``--tls-cert``: tests/proxy/test_proxy_cli.py)."""

from __future__ import annotations

import anyio
import pytest
from kite_proxy import ReverseProxy, TunnelProxy
from proxy_helpers import Farm
from tls_certs import TLSFiles

from kitecore import Config, Kite, KiteError

pytestmark = pytest.mark.anyio


def serving_tls(config: Config, tls: TLSFiles, host: str = "") -> Config:
    """``config`` serving TLS with the CA's certificate for 127.0.0.1, or for ``host``."""
    if host:
        config.tls_cert_file, config.tls_key_file = tls.issue(host, host)
    else:
        config.tls_cert_file, config.tls_key_file = tls.server_cert, tls.server_key
    return config


async def trusting_caller(farm: Farm, tls: TLSFiles) -> Kite:
    config = farm.config()
    config.tls_ca_file = tls.ca_file
    kite = Kite("caller", "1.0.0", config=config, plugins=farm.plugins)
    value, _ = await farm.start(lambda: kite)
    return value


async def test_a_kite_behind_a_tls_tunnel_proxy(farm: Farm, tls_files: TLSFiles) -> None:
    config = serving_tls(farm.config(farm.kontrol.username), tls_files)
    proxy, _ = await farm.serve_proxy(TunnelProxy(config, plugins=farm.plugins))
    assert proxy.url.startswith("wss://127.0.0.1:")
    kite = farm.kite(tls_ca_file=tls_files.ca_file)  # it dials the proxy's wss:// tunnel URLs
    public, _ = await farm.behind_tunnel(kite)
    assert public == f"https://{proxy.netloc}/proxy?kiteID={kite.id}"
    caller = await trusting_caller(farm, tls_files)
    (client,) = await caller.get_kites(name="square", environment="proxytest")
    assert client.url == public
    async with client:
        assert await client.tell("square", 7) == 49


async def test_a_tls_kite_behind_a_tls_reverse_proxy(farm: Farm, tls_files: TLSFiles) -> None:
    config = serving_tls(farm.config(farm.kontrol.username), tls_files)
    config.tls_ca_file = tls_files.ca_file  # how the proxy verifies the kites behind it
    proxy, _ = await farm.serve_proxy(ReverseProxy(config, plugins=farm.plugins))
    assert proxy.url.startswith("https://127.0.0.1:")
    kite = farm.kite("private", ip="127.0.0.2")
    serving_tls(kite.config, tls_files, "127.0.0.2")
    kite.config.tls_ca_file = tls_files.ca_file
    public, _ = await farm.behind_proxy(kite)
    assert kite.url.startswith("https://127.0.0.2:")
    assert public == f"https://{proxy.netloc}/proxy/{kite.id}"
    caller = await trusting_caller(farm, tls_files)
    for transport in ("WebSocket", "XHRPolling"):
        (client,) = await caller.get_kites(name="private", environment="proxytest")
        assert client.url == public
        client.transport = transport
        async with client:
            assert await client.tell("square", 6) == 36


async def test_the_reverse_proxy_verifies_the_kites_behind_it(
    farm: Farm, tls_files: TLSFiles
) -> None:
    """A proxy that does not trust the kite's CA refuses to forward to it (no silent
    downgrade to unverified TLS); callers get an error, not a hang."""
    config = serving_tls(farm.config(farm.kontrol.username), tls_files)  # no tls_ca_file
    await farm.serve_proxy(ReverseProxy(config, plugins=farm.plugins))
    kite = farm.kite("private", ip="127.0.0.2")
    serving_tls(kite.config, tls_files, "127.0.0.2")
    kite.config.tls_ca_file = tls_files.ca_file
    public, _ = await farm.behind_proxy(kite)
    caller = await trusting_caller(farm, tls_files)
    (client,) = await caller.get_kites(name="private", environment="proxytest")
    assert client.url == public
    client.transport = "WebSocket"
    with anyio.fail_after(30), pytest.raises((KiteError, OSError)):
        async with client:
            await client.tell("square", 2, timeout=5)
