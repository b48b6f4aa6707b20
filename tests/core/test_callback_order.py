"""Callbacks keep wire order, the reply included (issue 10.6).

When ``await client.tell(...)`` returns, every callback the peer invoked before it replied has
run, as with Go (``ConcurrentCallbacks = false``) and kite.js.
"""

from __future__ import annotations

import anyio
import pytest

from kitecore import Kite

pytestmark = pytest.mark.anyio


async def countdown(r):
    """Call ``cb`` n times (n-1 down to 0), then return."""
    n, callback = r.args.of_length(2)
    for i in reversed(range(n)):
        callback(i)
    return "done"


async def test_sync_callbacks_have_all_run_when_tell_returns(make_kite, kite_config, kite_plugins):
    server = await make_kite(methods={"countdown": countdown})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        for _ in range(5):
            seen = []
            assert await client.tell("countdown", 50, seen.append) == "done"
            assert seen == list(reversed(range(50)))


async def test_async_callbacks_have_all_finished_when_tell_returns(
    make_kite, kite_config, kite_plugins
):
    server = await make_kite(methods={"countdown": countdown})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    seen = []

    async def record(i):
        # yield a few times: a reply that jumped the queue would be seen before these end
        for _ in range(i % 3 + 1):
            await anyio.lowlevel.checkpoint()
        seen.append(i)

    async with caller.new_client(server.url) as client:
        assert await client.tell("countdown", 50, record) == "done"
        assert seen == list(reversed(range(50)))


async def test_a_callback_may_call_the_peer_and_wait_for_the_reply(
    make_kite, kite_config, kite_plugins
):
    """The reply to a call made by a running callback is not queued behind that callback."""

    async def notify(r):
        callback = r.args.function(0)
        callback("event")
        return "notified"

    async def square(r):
        return r.args.one() ** 2

    server = await make_kite(methods={"notify": notify, "square": square})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        answers = []

        async def on_event(name):
            answers.append((name, await client.tell("square", 7, timeout=5)))

        with anyio.fail_after(10):
            assert await client.tell("notify", on_event) == "notified"
        assert answers == [("event", 49)]
        assert client.connection.pending_callbacks == 1  # on_event; no reply left behind


async def test_a_failing_callback_does_not_stop_the_ones_after_it(
    make_kite, kite_config, kite_plugins
):
    server = await make_kite(methods={"countdown": countdown})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    seen = []

    def record(i):
        seen.append(i)
        if i % 2:
            raise ValueError("odd")

    async with caller.new_client(server.url) as client:
        assert await client.tell("countdown", 10, record) == "done"
    assert seen == list(reversed(range(10)))
