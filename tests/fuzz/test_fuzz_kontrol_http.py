"""Properties of Kontrol's HTTP endpoints: whatever a peer POSTs to ``/register`` or asks
``/heartbeat``, the answer is 200 or a 4xx with ``{"err": reason}`` (never a 500), and
Kontrol keeps serving.

A real Kontrol (memory storage) serves on a loopback port from an event loop in another
thread (hypothesis drives synchronous tests); every example is a real request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st
from kite_kontrol.keyfiles import new_key_pair
from kite_kontrol.machine import OpenPolicy
from kite_kontrol.server import Kontrol
from peer_json import json_values, peer_payloads

from kitecore import Config
from kitecore.http.client import HTTPClient
from kitecore.plugins import load_plugins

#: What /register may answer: success, bad input, refused kite.key, quota full.
REGISTER_STATUSES = {200, 400, 401, 429}


class Served:
    """A Kontrol serving in a portal's event loop, and a keep-alive HTTP client to it."""

    def __init__(self, portal: Any, kontrol: Kontrol, http: HTTPClient) -> None:
        self.portal = portal
        self.base = kontrol.url.removesuffix("/kite")
        self.http = http
        self.key = kontrol.create_kite_key("alice")

    def request(self, method: str, path: str, body: bytes = b"") -> Any:
        return self.portal.call(lambda: self.http.request(method, self.base + path, body=body))


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config(ip="127.0.0.1", port=0, username="admin")
    kontrol = Kontrol(
        config=config,
        plugins=load_plugins(names=("websocket",)),
        key_pair=new_key_pair(),
        machine_policy=OpenPolicy(),
    )
    with start_blocking_portal("asyncio") as portal:
        with portal.wrap_async_context_manager(kontrol):
            http = HTTPClient(timeout=30)
            try:
                yield Served(portal, kontrol, http)
            finally:
                portal.call(http.aclose)


identity_fields = ("username", "environment", "name", "version", "region", "hostname", "id")
field_values = st.one_of(
    st.sampled_from(["x", "1.0.0", "", "a/b", "ünï"]), st.text(max_size=300), json_values
)
kites = st.one_of(
    st.fixed_dictionaries({}, optional={f: field_values for f in identity_fields}), json_values
)
urls = st.one_of(
    st.sampled_from(["http://127.0.0.1:1/kite", "ws://h/k", "ftp://x", "http://:0", ""]),
    st.text(max_size=40),
    json_values,
)


@st.composite
def register_bodies(draw: st.DrawFn, key: str) -> bytes:
    """Mostly well-formed bodies with one or two parts off; sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(peer_payloads)
    auth = draw(
        st.one_of(
            st.just({"type": "kiteKey", "key": key}),
            st.fixed_dictionaries({"type": st.one_of(st.just("kiteKey"), json_values)},
                                  optional={"key": st.one_of(st.text(max_size=60), json_values)}),
            json_values,
        )
    )  # fmt: skip
    body = {"url": draw(urls), "kite": draw(kites), "auth": auth}
    return json.dumps(body).encode()


@given(data=st.data())
def test_register_answers_200_or_a_reason(served: Served, data: st.DataObject) -> None:
    body = data.draw(register_bodies(served.key))
    result = served.request("POST", "/register", body)
    assert result.status in REGISTER_STATUSES, (result.status, result.body[:200])
    answer = json.loads(result.body)
    assert isinstance(answer, dict)
    if result.status == 200:
        assert isinstance(answer["url"], str)
    else:
        assert isinstance(answer["err"], str) and answer["err"]


@given(kite_id=st.one_of(st.text(max_size=400), st.binary(max_size=40).map(lambda b: b.hex())))
def test_heartbeat_answers_pong_registeragain_or_400(served: Served, kite_id: str) -> None:
    result = served.request("GET", "/heartbeat?id=" + quote(kite_id, safe=""))
    if result.status == 200:
        assert result.body in (b"pong", b"registeragain")
    else:
        assert result.status == 400 and json.loads(result.body)["err"]
