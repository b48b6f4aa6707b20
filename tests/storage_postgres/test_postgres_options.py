"""Storage URLs and KONTROL_POSTGRES_* variables (no server needed)."""

from __future__ import annotations

import pytest
from kite_storage_postgres import PostgresOptions, PostgresStorage
from kite_storage_postgres.plugin import kite_register_storages

from kitecore.storage import InvalidInputError


def test_url_parts_and_plugin_options():
    options = PostgresOptions.from_url(
        "postgres://kontrol:s%40cret@db.example.com:6543/registry"
        "?schema=kites&pool_max_size=20&pool_min_size=2&command_timeout=3"
        "&connect_timeout=4&cleanup_interval=0&sslmode=require",
        environ={},
    )
    assert (options.host, options.port, options.user, options.password, options.database) == (
        "db.example.com",
        "6543",
        "kontrol",
        "s@cret",
        "registry",
    )
    assert options.schema == "kites"
    assert (options.pool_min_size, options.pool_max_size) == (2, 20)
    assert (options.command_timeout, options.connect_timeout, options.cleanup_interval) == (
        3.0,
        4.0,
        0.0,
    )
    assert options.params == {"sslmode": "require"}  # passed to asyncpg as is
    assert options.dsn() == (
        "postgresql://kontrol:s%40cret@db.example.com:6543/registry?sslmode=require"
    )
    kwargs = options.connect_kwargs()
    assert kwargs["timeout"] == 4.0 and kwargs["max_size"] == 20


def test_password_is_redacted_everywhere():
    options = PostgresOptions.from_url("postgres://kontrol:hunter2@db:5432/kite", environ={})
    for text in (options.dsn(redact=True), str(options), repr(options)):
        assert "hunter2" not in text
    assert options.dsn(redact=True) == "postgresql://kontrol:***@db:5432/kite"
    assert "hunter2" not in repr(PostgresStorage(options))


def test_environment_fills_what_the_url_leaves_out():
    environ = {
        "KONTROL_POSTGRES_HOST": "envhost",
        "KONTROL_POSTGRES_PORT": "5433",
        "KONTROL_POSTGRES_USERNAME": "envuser",
        "KONTROL_POSTGRES_PASSWORD": "envpass",
        "KONTROL_POSTGRES_DBNAME": "envdb",
        "KONTROL_POSTGRES_CONNECTTIMEOUT": "7",
        "KONTROL_POSTGRES_SCHEMA": "envschema",
    }
    bare = PostgresOptions.from_url("postgres://", environ=environ)
    assert (bare.host, bare.port, bare.user, bare.password, bare.database) == (
        "envhost",
        "5433",
        "envuser",
        "envpass",
        "envdb",
    )
    assert (bare.connect_timeout, bare.schema) == (7.0, "envschema")
    mixed = PostgresOptions.from_url("postgresql://urluser@urlhost/urldb", environ=environ)
    assert (mixed.host, mixed.port, mixed.user, mixed.password, mixed.database) == (
        "urlhost",
        "5433",
        "urluser",
        "envpass",
        "urldb",
    )


def test_unix_socket_and_host_lists():
    socket = PostgresOptions.from_url("postgres:///kite?host=/run/postgresql", environ={})
    assert socket.dsn() == "postgresql:///kite?host=%2Frun%2Fpostgresql"
    hosts = PostgresOptions.from_url("postgres://u@h1:5432,h2:5433/kite", environ={})
    assert hosts.dsn() == "postgresql://u@h1:5432,h2:5433/kite"
    ipv6 = PostgresOptions.from_url("postgres://u@[::1]:5432/kite", environ={})
    assert ipv6.dsn() == "postgresql://u@[::1]:5432/kite"


@pytest.mark.parametrize(
    "url",
    [
        "etcd://localhost:2379",
        "postgres://h/db?schema=Bad-Name",
        "postgres://h/db?pool_max_size=0",
        "postgres://h/db?command_timeout=soon",
        "postgres://h/db?connect_timeout=-1",
        "postgres://h:port/db",
    ],
)
def test_bad_urls_are_refused(url):
    with pytest.raises(InvalidInputError):
        PostgresOptions.from_url(url, environ={})


def test_bad_url_error_hides_the_password():
    with pytest.raises(InvalidInputError) as info:
        PostgresOptions.from_url("mysql://root:topsecret@h/db", environ={})
    assert "topsecret" not in str(info.value)


def test_plugin_registers_both_schemes():
    registered = {}
    kite_register_storages(lambda scheme, factory: registered.setdefault(scheme, factory))
    assert set(registered) == {"postgres", "postgresql"}
    storage = registered["postgresql"]("postgresql://u:p@127.0.0.1:1/db")
    assert isinstance(storage, PostgresStorage)
