"""Many and slow watchers (issue 10.3): every watcher gets exactly its events, a watcher that
does not read is dropped after one watchError without stalling Kontrol, and nothing of a
watcher stays in memory after it was cancelled. Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import weakref
from collections import defaultdict
from typing import Any

import anyio
import pytest
from kontrol_helpers import kite_key

from kitecore.contracts.storage import make_identity
from kitecore.http.client import connect_websocket
from kitecore.storage import RegisterValue

pytestmark = pytest.mark.anyio

WATCHERS = 1000
CONNECTIONS = 20
KITES = 1000
NAMES = 100  # watcher i and kite j watch/use the name svc<i % NAMES>: 10 watchers per kite


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # one backend: this test is about Kontrol's bookkeeping, not the loop


async def test_thousand_watchers_each_get_exactly_their_events(kontrol, make_kite):
    got: dict[int, list[tuple[str, str]]] = defaultdict(list)
    total = anyio.Event()
    expected_total = WATCHERS * (KITES // NAMES) * 2
    count = 0

    def handler_for(index: int) -> Any:
        def handler(message: dict[str, Any]) -> None:
            nonlocal count
            assert message["error"] is None, message
            event = message["result"]
            got[index].append((event["action"], event["kite"]["id"]))
            count += 1
            if count >= expected_total:
                total.set()

        return handler

    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    kites = [make_identity(name=f"svc{j % NAMES}") for j in range(KITES)]
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for c in range(CONNECTIONS):
            kite = make_kite(f"watcher{c}", username="bob")
            auth = kite_key(kontrol, "bob")
            clients.append(await stack.enter_async_context(kite.new_client(kontrol.url, auth=auth)))
        ids: dict[int, str] = {}

        async def subscribe(index: int) -> None:
            query = {"username": "alice", "name": f"svc{index % NAMES}"}
            client = clients[index % CONNECTIONS]
            answer = await client.tell(
                "getKites", {"query": query, "watchHandler": handler_for(index)}
            )
            assert answer["kites"] == []
            ids[index] = answer["watcherID"]

        async with anyio.create_task_group() as group:
            for index in range(WATCHERS):
                group.start_soon(subscribe, index)
        assert len(kontrol.watch) == WATCHERS
        watcher_refs = [weakref.ref(w) for w in kontrol.watch.watchers.values()]

        for kite in kites:
            await kontrol.storage.upsert(kite, value, ttl=600)
        for kite in kites:
            await kontrol.storage.delete(kite)
        with anyio.fail_after(60):
            await total.wait()

        for index in range(WATCHERS):
            name = f"svc{index % NAMES}"
            mine = [k.id for k in kites if k.name == name]
            events = got[index]
            assert sorted(events) == sorted(
                [("REGISTER", i) for i in mine] + [("DEREGISTER", i) for i in mine]
            ), index
            for kite_id in mine:  # in order per kite
                assert events.index(("REGISTER", kite_id)) < events.index(("DEREGISTER", kite_id))
        assert count == expected_total

        async def cancel(index: int) -> None:
            await clients[index % CONNECTIONS].tell("cancelWatcher", ids[index])

        async with anyio.create_task_group() as group:
            for index in range(WATCHERS):
                group.start_soon(cancel, index)
        hub = kontrol.watch
        assert len(hub) == 0
        assert hub._by_name == {} and hub._unnamed == set()
        assert all(not watchers for watchers in hub._by_client.values())
        gc.collect()
        assert [ref for ref in watcher_refs if ref() is not None] == []
        # events after the cancel reach nobody: a new watcher sees one, the old ones nothing
        seen = anyio.Event()
        await clients[0].tell(
            "getKites", {"query": {"name": kites[0].name}, "watchHandler": lambda m: seen.set()}
        )
        await kontrol.storage.upsert(kites[0], value, ttl=600)
        with anyio.fail_after(10):
            await seen.wait()
        assert count == expected_total


async def test_slow_watcher_gets_one_watch_error_and_is_dropped(kontrol, make_kite, settings):
    settings.watch_backlog = 50
    settings.watch_backlog_bytes = 64 * 1024
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    query = {"username": "alice", "name": "math"}
    caller = make_kite("slow", username="bob")
    request = {
        "method": "getKites",
        "arguments": [
            {
                "kite": caller.identity.to_wire(),
                "authentication": {"type": "kiteKey", "key": kite_key(kontrol, "bob").key},
                "withArgs": [{"query": query, "watchHandler": "[Function]"}],
                "responseCallback": "[Function]",
            }
        ],
        "callbacks": {"0": ["0", "withArgs", "0", "watchHandler"], "1": ["0", "responseCallback"]},
        "links": [],
    }
    slow = await connect_websocket(kontrol.url.replace("http://", "ws://"))
    async with (
        slow,
        make_kite("healthy", username="bob").new_client(
            kontrol.url, auth=kite_key(kontrol, "bob")
        ) as healthy,
    ):
        await slow.send(json.dumps(request))
        answer = json.loads(await slow.receive())
        watcher_id = answer["arguments"][0]["result"]["watcherID"]
        healthy_events = anyio.create_memory_object_stream[Any](math.inf)
        await healthy.tell(
            "getKites",
            {"query": query, "watchHandler": lambda m: healthy_events[0].send_nowait(m)},
        )
        # the slow side stops reading; push events until Kontrol gives up on it
        pushed = 0
        with anyio.fail_after(120):
            while watcher_id in kontrol.watch.watchers:
                assert pushed < 200_000, "Kontrol never dropped the watcher that does not read"
                batch = [make_identity() for _ in range(200)]
                for kite in batch:
                    await kontrol.storage.upsert(kite, value, ttl=600)
                for kite in batch:
                    await kontrol.storage.delete(kite)
                pushed += 400
                await anyio.sleep(0.01)
        # Kontrol's queue for the slow connection stays bounded
        (slow_client,) = [
            c for c in kontrol.kite._clients if c.remote_kite and c.remote_kite.name == "slow"
        ]
        assert slow_client.connection.backlog <= settings.watch_backlog + 2
        # one more event (about a kilobyte) at most was written after the byte limit was passed
        assert slow_client.connection.queued_bytes <= settings.watch_backlog_bytes + 64 * 1024
        # Kontrol still serves the others at once: the healthy watcher sees a new kite
        sentinel = make_identity()
        await kontrol.storage.upsert(sentinel, value, ttl=600)
        with anyio.fail_after(30):
            while True:
                message = await healthy_events[1].receive()
                assert message["error"] is None
                if message["result"]["kite"]["id"] == sentinel.id:
                    break
        # the slow side, once it reads, finds exactly one watchError after its events
        delivered = 0
        with anyio.fail_after(60):
            while True:
                message = json.loads(await slow.receive())
                (argument,) = message["arguments"]
                if argument["error"] is not None:
                    break
                assert argument["result"]["action"] in ("REGISTER", "DEREGISTER")
                delivered += 1
        assert argument["error"]["type"] == "watchError"
        assert watcher_id in argument["error"]["message"]
        assert argument["result"] is None
        assert 0 < delivered < pushed
        assert watcher_id not in kontrol.watch.watchers
