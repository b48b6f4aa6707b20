"""The etcd storage over TLS and with user/password authentication, against real etcd servers:
one started with ``--cert-file/--key-file/--client-cert-auth`` (certificates made by the test),
one with authentication enabled through etcdctl."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kite_storage_etcd import EtcdStorage, parse_etcd_url
from kite_storage_etcd.testing import EtcdCluster, EtcdTLS
from tls_certs import TLSFiles, make_tls_files

from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import InvalidInputError, Query, RegisterValue, StorageError

VALUE = RegisterValue("https://10.0.0.5:6000/kite", "key-1")


def identity(name: str = "math") -> KiteIdentity:
    return KiteIdentity("alice", "prod", name, "1.0.0", "eu", "host", str(uuid.uuid4()))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdCluster, TLSFiles]]:
    """An etcd serving TLS only and requiring client certificates of the test CA."""
    files = make_tls_files(tmp_path_factory.mktemp("etcd-tls-certs"))
    tls = EtcdTLS(
        files.server_cert, files.server_key, files.ca_file, files.client_cert, files.client_key
    )
    with EtcdCluster.start(tmp_path_factory.mktemp("etcd-tls"), tls=tls) as cluster:
        yield cluster, files


async def roundtrip(url: str) -> None:
    kite = identity()
    async with EtcdStorage(url) as storage:
        await storage.upsert(kite, VALUE, ttl=60)
        (record,) = await storage.get(Query(id=kite.id))
        assert record.url == VALUE.url
        await storage.delete(kite)


@pytest.mark.anyio
async def test_etcd_over_tls_with_a_client_certificate(
    tls_etcd: tuple[EtcdCluster, TLSFiles],
) -> None:
    cluster, _ = tls_etcd
    url = cluster.storage_url(f"/tls-{uuid.uuid4().hex[:8]}", timeout=3)
    assert url.startswith("etcds://")
    await roundtrip(url)


@pytest.mark.anyio
async def test_etcd_over_tls_refuses_what_it_cannot_verify(
    tls_etcd: tuple[EtcdCluster, TLSFiles], tmp_path: Path
) -> None:
    cluster, files = tls_etcd
    endpoint = cluster.endpoints
    # no client certificate: etcd refuses it
    with pytest.raises(StorageError):
        await roundtrip(f"etcds://{endpoint}/x?timeout=2&ca={files.ca_file}")
    # a server certificate from a CA we do not trust
    stranger = make_tls_files(tmp_path / "stranger")
    with pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"):
        await roundtrip(
            f"etcds://{endpoint}/x?timeout=2&ca={stranger.ca_file}"
            f"&cert={files.client_cert}&key={files.client_key}"
        )
    # plaintext to the TLS port
    with pytest.raises(StorageError):
        await roundtrip(f"etcd://{endpoint}/x?timeout=2")
    # still serving the right client
    await roundtrip(cluster.storage_url("/after", timeout=3))


def etcd_admin(endpoint: str, path: str, body: dict[str, str]) -> None:
    """One call of etcd's v3 JSON gateway (``/v3/auth/...``); etcdctl is not needed."""
    request = urllib.request.Request(
        f"http://{endpoint}/v3/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """An etcd with authentication on: users ``root`` and ``kontrol`` (password ``s3cret:/@``,
    so the URL has to escape it), both in the ``root`` role."""
    with EtcdCluster.start(tmp_path_factory.mktemp("etcd-auth")) as cluster:
        endpoint = cluster.endpoints
        etcd_admin(endpoint, "auth/role/add", {"name": "root"})
        for user, password in (("root", "root-pw"), ("kontrol", "s3cret:/@")):
            etcd_admin(endpoint, "auth/user/add", {"name": user, "password": password})
            etcd_admin(endpoint, "auth/user/grant", {"user": user, "role": "root"})
        etcd_admin(endpoint, "auth/enable", {})
        yield cluster


@pytest.mark.anyio
async def test_etcd_user_and_password(
    auth_etcd: EtcdCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = auth_etcd.endpoints
    await roundtrip(f"etcd://kontrol:s3cret%3A%2F%40@{endpoint}/auth?timeout=3")
    # the password from the environment instead of the URL
    monkeypatch.setenv("KITE_ETCD_PASSWORD", "s3cret:/@")
    await roundtrip(f"etcd://kontrol@{endpoint}/auth-env?timeout=3")
    # without credentials, or with a wrong password: a storage error, the password not shown
    with pytest.raises(StorageError):
        await roundtrip(f"etcd://{endpoint}/auth?timeout=2")
    with pytest.raises(StorageError) as caught:
        await roundtrip(f"etcd://kontrol:wrong-pw@{endpoint}/auth?timeout=2")
    assert "wrong-pw" not in str(caught.value)


def test_url_options_and_the_password_kept_out_of_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KITE_ETCD_PASSWORD", raising=False)
    url = parse_etcd_url("etcds://u:p%40ss@a:1,b/k?ca=/ca.pem&cert=/c.pem&key=/c.key&timeout=2")
    assert url.tls and url.endpoints == (("a", 1), ("b", 2379))
    assert (url.ca_file, url.cert_file, url.key_file) == ("/ca.pem", "/c.pem", "/c.key")
    assert (url.username, url.password) == ("u", "p@ss")
    assert "p@ss" not in str(url) and "p%40ss" not in str(url) and "p@ss" not in repr(url)
    assert str(url).startswith("etcds://u@a:1,b:2379/k?")
    assert "p@ss" not in repr(EtcdStorage(url))
    for bad, message in (
        ("etcd://a/k?ca=/ca.pem", "need TLS: use etcds://"),
        ("etcds://a/k?cert=/c.pem", "both cert= and key="),
        ("etcd://u@a/k", "has no password"),
        ("etcd://:pw@a/k", "needs a user name"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            parse_etcd_url(bad)
    with pytest.raises(InvalidInputError) as caught:
        parse_etcd_url("etcd://u:topsecret@a:99999/k")
    assert "topsecret" not in str(caught.value)
