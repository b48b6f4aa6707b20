"""Issue 15 §5 and §6 against a real Kontrol process: lockout, quota, sizes, hostile JSON.

Each attack runs against ``python -m kite_kontrol`` over real sockets; afterwards the
process is alive, a normal kite still registers over HTTP and is found with ``getKites``, and
its resident memory stays under :data:`RSS_BOUND`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from app_helpers import KONTROL_SECRET, http_request, kontrol_process
from hardening_helpers import process_rss
from kite_kontrol.testing import KontrolProcess
from kite_kontrol.testing import machine_key as kontrol_machine_key

from kitecore import ArgumentError, AuthenticationError, GenericError, Kite, RequestLimitError
from kitecore.plugins import PluginRegistry
from kitecore.protocol import Authentication
from kitecore.testing import free_port

pytestmark = pytest.mark.anyio

#: Kontrol's resident memory after any attack here (it starts at about 60 MB).
RSS_BOUND = 200 * 1024 * 1024
QUOTA = 5
MAX_FAILURES = 3
LIMITS = {
    "KONTROL_MAX_KITES_PER_USER": str(QUOTA),
    "KONTROL_MACHINE_MAX_FAILURES": str(MAX_FAILURES),
    "KONTROL_MACHINE_LOCKOUT": "600",
}


@pytest.fixture
def plugins(token_plugins: PluginRegistry) -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators (kite_kontrol.testing)."""
    return token_plugins


@pytest.fixture(params=["asyncio", "trio"])
async def kontrol(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """The attacked Kontrol process, on each anyio backend."""
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "client-home"))
    process = kontrol_process(tmp_path, free_port(), limits=LIMITS, backend=request.param)
    try:
        await process.start()
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            await process.stop()


def _caller(plugins: PluginRegistry) -> Kite:
    kite = Kite("caller", "1.0.0", plugins=plugins)
    kite.config.disable_authentication = True
    kite.config.transport = "websocket"
    return kite


async def machine_key(plugins: PluginRegistry, url: str, username: str) -> str:
    return await kontrol_machine_key(_caller(plugins), url, username, KONTROL_SECRET)


def identity(username: str, kite_id: str | None = None, **fields: str) -> dict[str, str]:
    kite = {
        "username": username,
        "environment": "hardening",
        "name": "normal",
        "version": "1.0.0",
        "region": "here",
        "hostname": "host",
        "id": kite_id or str(uuid.uuid4()),
    }
    kite.update(fields)
    return kite


async def http_register(
    kontrol: KontrolProcess, key: Any, kite: dict[str, str], url: str = "http://127.0.0.1:1/kite"
) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"url": url, "kite": kite, "auth": {"type": "kiteKey", "key": key}})
    status, answer = await http_request(kontrol.port, "POST", "/register", body.encode())
    return status, json.loads(answer)


async def assert_healthy(
    kontrol: KontrolProcess, plugins: PluginRegistry, key: str, username: str = "bob"
) -> None:
    """Alive, a normal kite of ``username`` (``key``'s) registers and is found, memory bounded."""
    assert kontrol.process is not None and kontrol.process.returncode is None
    kite = identity(username)
    status, answer = await http_register(kontrol, key, kite)
    assert status == 200, answer
    async with _caller(plugins).new_client(
        kontrol.url, auth=Authentication("kiteKey", key)
    ) as client:
        query = {"username": username, "id": kite["id"]}
        found = await client.tell("getKites", {"query": query})
    assert [k["kite"]["id"] for k in found["kites"]] == [kite["id"]]
    assert process_rss(kontrol.process.pid) < RSS_BOUND


async def test_wrong_secrets_lock_out_the_peer_and_the_username(kontrol, plugins):
    bob_key = await machine_key(plugins, kontrol.url, "bob")
    answers: list[str] = []
    async with _caller(plugins).new_client(kontrol.url) as client:
        for _ in range(300):  # unlimited, this answered 16,500 guesses a second
            with pytest.raises(GenericError) as caught:
                await client.tell("registerMachine", {"username": "alice", "secret": "guess"})
            answers.append(caught.value.message)
        with pytest.raises(GenericError, match="too many failed attempts") as right_secret:
            await client.tell("registerMachine", {"username": "alice", "secret": KONTROL_SECRET})
    assert answers[:MAX_FAILURES] == ["cannot authenticate user: wrong registration secret"] * 3
    assert all("too many failed attempts, try again in" in a for a in answers[MAX_FAILURES:])
    assert "try again in 600 s" in right_secret.value.message
    await assert_healthy(kontrol, plugins, bob_key)


async def test_one_user_may_register_at_most_the_quota(kontrol, plugins):
    alice_key = await machine_key(plugins, kontrol.url, "alice")
    bob_key = await machine_key(plugins, kontrol.url, "bob")
    kites = [identity("alice") for _ in range(QUOTA)]
    for kite in kites:
        assert (await http_register(kontrol, alice_key, kite))[0] == 200
    for _ in range(50):
        status, answer = await http_register(kontrol, alice_key, identity("alice"))
        assert (status, answer) == (
            429,
            {"err": f"user alice already has {QUOTA} registered kites (the quota)"},
        )
    assert (await http_register(kontrol, alice_key, kites[0]))[0] == 200  # again: allowed
    async with _caller(plugins).new_client(
        kontrol.url, auth=Authentication("kiteKey", alice_key)
    ) as client:
        found = await client.tell("getKites", {"query": {"username": "alice"}})
        assert len(found["kites"]) == QUOTA
        with pytest.raises(RequestLimitError, match="the quota"):  # and over RPC
            await client.tell("register", {"url": "http://127.0.0.1:2/kite"})
    await assert_healthy(kontrol, plugins, bob_key)


async def test_oversized_urls_and_identity_fields_are_refused(kontrol, plugins):
    key = await machine_key(plugins, kontrol.url, "alice")
    huge = "x" * (1024 * 1024)
    status, answer = await http_register(kontrol, key, identity("alice"), f"http://{huge}/kite")
    assert (status, answer) == (400, {"err": "url is longer than 2048 bytes"})
    for field in ("id", "name", "environment", "hostname", "region", "version"):
        status, answer = await http_register(kontrol, key, identity("alice", **{field: huge}))
        assert (status, answer) == (400, {"err": f'kite field "{field}" is longer than 256 bytes'})
    status, _ = await http_request(kontrol.port, "GET", "/heartbeat?id=" + "y" * 4096)
    assert status == 400
    async with _caller(plugins).new_client(
        kontrol.url, auth=Authentication("kiteKey", key)
    ) as client:
        with pytest.raises(ArgumentError, match="url is longer than 2048 bytes"):
            await client.tell("register", {"url": f"http://{huge}/kite"})
        with pytest.raises(ArgumentError, match='"name" is longer than 256 bytes'):
            await client.tell("getKites", {"query": {"username": "alice", "name": huge}})
        with pytest.raises(ArgumentError, match="username is longer than 256 bytes"):
            await client.tell("registerMachine", {"username": huge, "secret": KONTROL_SECRET})
        found = await client.tell("getKites", {"query": {"username": "alice"}})
    assert found == {"kites": []}  # nothing was stored
    await assert_healthy(kontrol, plugins, key, "alice")


def _deep_token() -> str:
    segment = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=").decode()
    return f"{segment}.{segment}.c2ln"


def _body(auth: Any) -> bytes:
    return json.dumps({"url": "http://h:1/kite", "kite": {}, "auth": auth}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"url":' + b"[" * 100_000,
        _body({"type": "kiteKey", "key": ["a"]}),
        _body({"type": "kiteKey", "key": {"k": 1}}),
        _body({"type": ["kiteKey"]}),
        _body("kiteKey"),
        _body({"type": "kiteKey", "key": _deep_token()}),
        b'{"url": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe",
    ],
    ids=["deep-array", "deep-object", "deep-url", "key-list", "key-object", "type-list",
         "auth-string", "deep-token", "huge-int", "not-utf8"],
)  # fmt: skip
async def test_hostile_register_bodies_get_400_not_500(kontrol, plugins, body):
    key = await machine_key(plugins, kontrol.url, "bob")
    status, answer = await http_request(kontrol.port, "POST", "/register", body)
    assert status in (400, 401), answer
    assert "err" in json.loads(answer) and b"Traceback" not in answer
    await assert_healthy(kontrol, plugins, key)


async def test_register_with_wrong_field_types_gets_400(kontrol, plugins):
    key = await machine_key(plugins, kontrol.url, "bob")
    for body in (
        {"url": ["http://h:1/kite"], "kite": identity("bob"), "auth": {"type": "kiteKey"}},
        {"url": "http://h:1/kite", "kite": ["x"], "auth": {"type": "kiteKey", "key": key}},
        {"url": {"u": 1}, "kite": identity("bob"), "auth": {"type": "kiteKey", "key": key}},
        {"url": "http://h:1/kite", "kite": {"id": 7}, "auth": {"type": "kiteKey", "key": key}},
    ):  # fmt: skip
        status, answer = await http_request(
            kontrol.port, "POST", "/register", json.dumps(body).encode()
        )
        assert status in (400, 401), answer
    await assert_healthy(kontrol, plugins, key)


async def test_deeply_nested_tokens_are_refused_over_rpc(kontrol, plugins):
    """A kite.key or token whose JWT segments nest 100,000 deep: authenticationError."""
    key = await machine_key(plugins, kontrol.url, "bob")
    for auth_type in ("kiteKey", "token"):
        auth = Authentication(auth_type, _deep_token())
        async with _caller(plugins).new_client(kontrol.url, auth=auth) as client:
            for method in ("getKey", "getKites"):
                with pytest.raises(AuthenticationError, match=r"malformed|not base64url"):
                    await client.tell(method, {"query": {"username": "bob"}})
    await assert_healthy(kontrol, plugins, key)
