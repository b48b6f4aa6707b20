"""A kite over TLS (raw WebSocket transport, core only): serving https/wss and advertising it,
verification on by default, a private CA, mutual TLS, the loudly logged opt-out."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tls_certs import TLSFiles, make_tls_files

import kitecore.tls
from kitecore.client import DialError
from kitecore.config import Config, ConfigError
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry
from kitecore.testing import MakeKite, square
from kitecore.tls import TLSConfigError

pytestmark = pytest.mark.anyio


def serving(config: Config, tls: TLSFiles, *, mutual: bool = False) -> Config:
    config = config.copy()
    config.tls_cert_file = tls.server_cert
    config.tls_key_file = tls.server_key
    if mutual:
        config.tls_client_ca_file = tls.ca_file
    return config


def caller(config: Config, plugins: PluginRegistry, **tls_fields: Any) -> Kite:
    config = config.copy()
    for name, value in tls_fields.items():
        setattr(config, name, value)
    return Kite("caller", "1.0.0", config=config, plugins=plugins)


async def test_serves_https_and_calls_verify_against_the_ca(
    make_kite: MakeKite, kite_config: Config, kite_plugins: PluginRegistry, tls_files: TLSFiles
) -> None:
    server = await make_kite(methods={"square": square}, config=serving(kite_config, tls_files))
    assert server.url.startswith("https://127.0.0.1:")
    client_kite = caller(kite_config, kite_plugins, tls_ca_file=tls_files.ca_file)
    for url in (server.url, server.url.replace("https://", "wss://")):
        async with client_kite.new_client(url) as client:
            assert await client.tell("square", 7) == 49
    localhost = server.url.replace("127.0.0.1", "localhost")
    async with client_kite.new_client(localhost) as client:
        assert await client.tell("square", 3) == 9


async def test_verification_is_on_by_default(
    make_kite: MakeKite, kite_config: Config, kite_plugins: PluginRegistry, tls_files: TLSFiles
) -> None:
    server = await make_kite(methods={"square": square}, config=serving(kite_config, tls_files))
    with pytest.raises(DialError) as caught:
        async with caller(kite_config, kite_plugins).new_client(server.url) as client:
            await client.tell("square", 2)
    message = str(caught.value)
    assert "certificate was refused" in message
    assert "unable to get local issuer certificate" in message
    # the kite keeps serving
    trusting = caller(kite_config, kite_plugins, tls_ca_file=tls_files.ca_file)
    async with trusting.new_client(server.url) as client:
        assert await client.tell("square", 5) == 25


async def test_insecure_opt_out_is_logged_once(
    make_kite: MakeKite,
    kite_config: Config,
    kite_plugins: PluginRegistry,
    tls_files: TLSFiles,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kitecore.tls, "_insecure_warned", False)
    server = await make_kite(methods={"square": square}, config=serving(kite_config, tls_files))
    with caplog.at_level(logging.WARNING, logger="kitecore.tls"):
        for _ in range(2):
            insecure = caller(kite_config, kite_plugins, tls_insecure=True)
            async with insecure.new_client(server.url) as client:
                assert await client.tell("square", 4) == 16
    warnings = [r for r in caplog.records if r.name == "kitecore.tls"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "verification is OFF" in warnings[0].getMessage()


async def test_mutual_tls_requires_a_trusted_client_certificate(
    make_kite: MakeKite,
    kite_config: Config,
    kite_plugins: PluginRegistry,
    tls_files: TLSFiles,
    tmp_path: Any,
) -> None:
    server = await make_kite(
        methods={"square": square}, config=serving(kite_config, tls_files, mutual=True)
    )
    # no client certificate: refused
    plain = caller(kite_config, kite_plugins, tls_ca_file=tls_files.ca_file)
    with pytest.raises(DialError):
        async with plain.new_client(server.url) as client:
            await client.tell("square", 2)
    # a client certificate from a CA the kite does not trust: refused
    stranger = make_tls_files(tmp_path / "stranger")
    untrusted = caller(
        kite_config,
        kite_plugins,
        tls_ca_file=tls_files.ca_file,
        tls_client_cert_file=stranger.client_cert,
        tls_client_key_file=stranger.client_key,
    )
    with pytest.raises(DialError) as caught:
        async with untrusted.new_client(server.url) as client:
            await client.tell("square", 2)
    assert "client certificate" in str(caught.value)
    # the right one: served, and the kite served on through the refusals
    trusted = caller(
        kite_config,
        kite_plugins,
        tls_ca_file=tls_files.ca_file,
        tls_client_cert_file=tls_files.client_cert,
        tls_client_key_file=tls_files.client_key,
    )
    async with trusted.new_client(server.url) as client:
        assert await client.tell("square", 6) == 36


async def test_refused_client_certificate_is_named_in_the_error(
    make_kite: MakeKite, kite_config: Config, kite_plugins: PluginRegistry, tls_files: TLSFiles
) -> None:
    server = await make_kite(
        methods={"square": square}, config=serving(kite_config, tls_files, mutual=True)
    )
    plain = caller(kite_config, kite_plugins, tls_ca_file=tls_files.ca_file)
    with pytest.raises(DialError) as caught:
        async with plain.new_client(server.url) as client:
            await client.tell("square", 2)
    assert "client certificate" in str(caught.value)


def test_environment_variables() -> None:
    config = Config()
    config.read_environment(
        {
            "KITE_TLS_CERT_FILE": "/c.pem",
            "KITE_TLS_KEY_FILE": "/c.key",
            "KITE_TLS_CLIENT_CA_FILE": "/clients.pem",
            "KITE_TLS_CA_FILE": "/ca.pem",
            "KITE_TLS_CLIENT_CERT_FILE": "/me.pem",
            "KITE_TLS_CLIENT_KEY_FILE": "/me.key",
            "KITE_TLS_INSECURE": "true",
        }
    )
    assert (config.tls_cert_file, config.tls_key_file) == ("/c.pem", "/c.key")
    assert config.tls_client_ca_file == "/clients.pem"
    assert config.tls_ca_file == "/ca.pem"
    assert (config.tls_client_cert_file, config.tls_client_key_file) == ("/me.pem", "/me.key")
    assert config.tls_insecure is True
    with pytest.raises(ConfigError, match="KITE_TLS_INSECURE='maybe'"):
        Config().read_environment({"KITE_TLS_INSECURE": "maybe"})
    off = Config()
    off.read_environment({"KITE_TLS_INSECURE": "0"})
    assert off.tls_insecure is False


async def test_bad_tls_settings_fail_at_start_naming_the_setting(
    kite_config: Config, kite_plugins: PluginRegistry, tls_files: TLSFiles
) -> None:
    half = kite_config.copy()
    half.tls_cert_file = tls_files.server_cert
    with pytest.raises(TLSConfigError, match="KITE_TLS_KEY_FILE"):
        async with Kite("half", "1.0.0", config=half, plugins=kite_plugins):
            pass
    missing = serving(kite_config, tls_files)
    missing.tls_key_file = tls_files.server_key + ".gone"
    with pytest.raises(TLSConfigError, match=r"tls_key_file \(KITE_TLS_KEY_FILE\): no such file"):
        async with Kite("missing", "1.0.0", config=missing, plugins=kite_plugins):
            pass
    swapped = serving(kite_config, tls_files)
    swapped.tls_key_file = tls_files.client_key  # not the certificate's key
    with pytest.raises(TLSConfigError, match="cannot load the certificate"):
        async with Kite("swapped", "1.0.0", config=swapped, plugins=kite_plugins):
            pass
    client_ca_alone = kite_config.copy()
    client_ca_alone.tls_client_ca_file = tls_files.ca_file
    with pytest.raises(TLSConfigError, match="needs tls_cert_file"):
        async with Kite("clientca", "1.0.0", config=client_ca_alone, plugins=kite_plugins):
            pass


async def test_a_plain_http_request_to_the_tls_port_is_no_logged_error(
    make_kite: MakeKite,
    kite_config: Config,
    kite_plugins: PluginRegistry,
    tls_files: TLSFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import anyio

    server = await make_kite(methods={"square": square}, config=serving(kite_config, tls_files))
    with caplog.at_level(logging.DEBUG):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as raw:
            await raw.send(b"GET /kite/health HTTP/1.1\r\nHost: x\r\n\r\n")
            with (
                anyio.fail_after(30),
                pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
            ):
                while True:
                    await raw.receive()
        # the server logs after it closed the socket: a call served after it comes later
        trusting = caller(kite_config, kite_plugins, tls_ca_file=tls_files.ca_file)
        async with trusting.new_client(server.url) as client:
            assert await client.tell("square", 2) == 4
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
