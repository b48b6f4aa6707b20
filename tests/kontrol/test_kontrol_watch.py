"""Registry watches on the wire (issue 10.1, protocol.md §15): getKites with a watch function,
the events it receives, cancelWatcher, and bad input. Real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import anyio
import pytest
from kite_auth_token import verify_token
from kontrol_helpers import KONTROL_USER, kite_key

from kitecore import GenericError, Query
from kitecore.contracts.storage import make_identity
from kitecore.storage import RegisterValue, StorageError

pytestmark = pytest.mark.anyio

MATH = {"username": "alice", "environment": "production", "name": "math"}


def deregister(kite: dict[str, str]) -> dict[str, Any]:
    """A DEREGISTER event as Kontrol sends it (an empty token: kite.js needs the key)."""
    return {"action": "DEREGISTER", "kite": kite, "token": ""}


class Events:
    """A watch function that queues what it receives."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Any](math.inf)
        self.count = 0

    def __call__(self, *args: Any) -> None:
        self.count += 1
        self.send.send_nowait(args)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            args = await self.receive.receive()
        assert len(args) == 1, args  # one response-shaped argument
        return args[0]

    async def result(self) -> dict[str, Any]:
        message = await self.next()
        assert message["error"] is None, message
        return message["result"]


async def watch(client, query: dict[str, str], *, key: str = "watchHandler") -> tuple[Any, Events]:
    events = Events()
    answer = await client.tell("getKites", {"query": query, key: events})
    return answer, events


async def register(stack, kontrol, kite):
    await stack.enter_async_context(kite)
    auth = kite_key(kontrol, kite.config.username)
    client = await stack.enter_async_context(kite.new_client(kontrol.url, auth=auth))
    await client.tell("register", {"url": kite.url})
    return client


@pytest.fixture
async def watcher_client(kontrol, make_kite):
    """A client of user bob connected to Kontrol (the one that watches)."""
    kite = make_kite("watcher", username="bob")
    async with kite.new_client(kontrol.url, auth=kite_key(kontrol, "bob")) as client:
        yield client


@pytest.mark.parametrize("key", ["watchHandler", "watchCallback"])
async def test_register_and_disconnect_events(kontrol, make_kite, watcher_client, key):
    answer, events = await watch(watcher_client, MATH, key=key)
    assert answer["kites"] == []
    assert isinstance(answer["watcherID"], str) and answer["watcherID"]
    kite = make_kite("math")
    async with contextlib.AsyncExitStack() as stack:
        await register(stack, kontrol, kite)
        event = await events.result()
        assert event["action"] == "REGISTER"
        assert event["kite"] == kite.identity.to_wire()
        assert event["url"] == kite.url
        claims = verify_token(
            event["token"], public_key=kontrol.public_key, issuer=KONTROL_USER, kite=kite.identity
        )
        assert claims.subject == "bob"
    # the kite's connection closed: it leaves at once, not one TTL later
    event = await events.result()
    assert event == deregister(kite.identity.to_wire())
    assert await kontrol.storage.get(Query(id=kite.id)) == []


async def test_initial_kites_then_only_news(kontrol, make_kite, watcher_client):
    first = make_kite("math", region="r1")
    async with contextlib.AsyncExitStack() as stack:
        await register(stack, kontrol, first)
        answer, events = await watch(watcher_client, MATH)
        assert [entry["kite"]["id"] for entry in answer["kites"]] == [first.id]
        # re-registering a live kite, and its heartbeats, are no news
        client = await register(stack, kontrol, make_kite("math", region="r2"))
        event = await events.result()
        assert event["kite"]["region"] == "r2"
        await client.tell("register", {"url": client.kite.url})
        await anyio.sleep(kontrol.settings.update_interval * 2)  # heartbeats refresh storage
        third = make_kite("math", region="r3")
        await register(stack, kontrol, third)
        assert (await events.result())["kite"]["id"] == third.id


async def test_the_change_feed_opens_at_the_first_watch(kontrol, make_kite, watcher_client):
    """A Kontrol nobody watches reads no change feed; the first watch opens it before it is
    answered, so a kite registering right after that answer is an event."""
    async with contextlib.AsyncExitStack() as stack:
        first = make_kite("math", region="r1")
        await register(stack, kontrol, first)
        assert not kontrol.watch.live.is_set()
        answer, events = await watch(watcher_client, MATH)
        assert kontrol.watch.live.is_set()
        assert [entry["kite"]["id"] for entry in answer["kites"]] == [first.id]
        second = make_kite("math", region="r2")
        await register(stack, kontrol, second)
        assert (await events.result())["kite"]["id"] == second.id


async def test_expiry_and_removal_are_deregister(kontrol, watcher_client):
    _, events = await watch(watcher_client, MATH)
    short, removed = make_identity(), make_identity()
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    await kontrol.storage.upsert(short, value, ttl=0.3)
    await kontrol.storage.upsert(removed, value, ttl=60)
    got = {(e["action"], e["kite"]["id"]) for e in [await events.result(), await events.result()]}
    assert got == {("REGISTER", short.id), ("REGISTER", removed.id)}
    assert await events.result() == deregister(short.to_wire())
    await kontrol.storage.delete(removed)
    assert await events.result() == deregister(removed.to_wire())


async def test_query_fields_and_version_constraint_filter_events(kontrol, watcher_client):
    query = {**MATH, "version": ">= 1.1, < 2", "region": "eu"}
    _, events = await watch(watcher_client, query)
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    skipped = [
        make_identity(version="1.0.0"),
        make_identity(version="2.0.0"),
        make_identity(version="1.5.0", region="us"),
        make_identity(version="1.5.0", name="other"),
        make_identity(version="1.5.0", username="carol"),
    ]
    wanted = make_identity(version="1.5.0")
    for kite in [*skipped, wanted]:
        await kontrol.storage.upsert(kite, value, ttl=60)
    for kite in skipped:
        await kontrol.storage.delete(kite)
    await kontrol.storage.delete(wanted)
    assert (await events.result())["kite"] == wanted.to_wire()
    assert await events.result() == deregister(wanted.to_wire())


async def test_cancel_watcher(kontrol, watcher_client, make_kite):
    answer, events = await watch(watcher_client, MATH)
    assert len(kontrol.watch) == 1
    assert await watcher_client.tell("cancelWatcher", answer["watcherID"]) is None
    assert len(kontrol.watch) == 0
    with pytest.raises(GenericError, match="Watcher not found"):
        await watcher_client.tell("cancelWatcher", answer["watcherID"])
    # nothing arrives after the cancel: the next event seen is another watcher's sentinel's
    _, other = await watch(watcher_client, MATH)
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    await kontrol.storage.upsert(make_identity(), value, ttl=60)
    await other.result()
    assert events.count == 0


async def test_watcher_ends_with_its_connection(kontrol, make_kite):
    kite = make_kite("watcher", username="bob")
    gone = anyio.Event()
    # Kontrol's kite-wide disconnect hooks run after the connection's own (the hub's)
    kontrol.kite.on_disconnect(lambda client: gone.set())
    async with kite.new_client(kontrol.url, auth=kite_key(kontrol, "bob")) as client:
        await watch(client, MATH)
        await watch(client, {"username": "alice"})
        assert len(kontrol.watch) == 2
    with anyio.fail_after(10):
        await gone.wait()
    assert len(kontrol.watch) == 0
    assert kontrol.watch.watchers == {}


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("handler", ["not a function", 42, {"a": 1}, [1]])
async def test_watch_handler_that_is_not_a_function(kontrol, watcher_client, handler):
    with pytest.raises(GenericError, match="a watch needs a function"):
        await watcher_client.tell("getKites", {"query": MATH, "watchHandler": handler})
    assert len(kontrol.watch) == 0


@pytest.mark.parametrize(
    "query", [{}, {"name": "a/b"}, {"name": "math", "version": ">= nonsense"}, {"name": 5}]
)
async def test_watch_with_invalid_query(kontrol, watcher_client, query):
    with pytest.raises(GenericError, match="invalid query"):
        await watch(watcher_client, query)
    assert len(kontrol.watch) == 0


@pytest.mark.parametrize("watcher_id", [None, 5, "", {"id": "x"}])
async def test_cancel_watcher_bad_id(watcher_client, watcher_id):
    with pytest.raises(GenericError, match="watcher id"):
        await watcher_client.tell("cancelWatcher", watcher_id)


async def test_cannot_cancel_someone_elses_watcher(kontrol, make_kite, watcher_client):
    answer, _ = await watch(watcher_client, MATH)
    other = make_kite("intruder", username="bob")  # even the same user: another connection
    async with other.new_client(kontrol.url, auth=kite_key(kontrol, "bob")) as client:
        with pytest.raises(GenericError, match="belongs to another connection"):
            await client.tell("cancelWatcher", answer["watcherID"])
    assert answer["watcherID"] in kontrol.watch.watchers


async def test_feed_failure_is_logged_and_recovered_without_loss_or_repeat(
    kontrol, watcher_client, caplog
):
    _, events = await watch(watcher_client, MATH)
    value = RegisterValue("http://127.0.0.1:9/kite", kontrol.keyring.current.id)
    (feed,) = kontrol.storage._feeds  # the hub's change feed on the memory storage
    feed.fail(StorageError("feed broke"))  # as a backend whose stream died for good
    missed = make_identity()
    await kontrol.storage.upsert(missed, value, ttl=60)  # no feed hears this one
    event = await events.result()  # the hub reopened the feed and resynchronised
    assert (event["action"], event["kite"]["id"]) == ("REGISTER", missed.id)
    sentinel = make_identity()
    await kontrol.storage.upsert(sentinel, value, ttl=60)
    assert (await events.result())["kite"]["id"] == sentinel.id  # nothing repeated
    assert "storage change feed failed" in caplog.text
    assert len(kontrol.storage._feeds) == 1  # the broken feed is gone, one live feed
