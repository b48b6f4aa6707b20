"""End-to-end RPC between kites over real sockets (raw WebSocket) and loopback."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest

from kitecore import (
    ArgumentError,
    DisconnectError,
    GenericError,
    Kite,
    KiteTimeoutError,
    MethodHandling,
    MethodNotFoundError,
    RequestLimitError,
)

pytestmark = pytest.mark.anyio


async def test_square_and_ping(kite_client):
    assert await kite_client.tell("square", 4) == 16
    assert await kite_client.tell("square", 1.5) == 2.25
    assert await kite_client.tell("kite.ping") == "pong"


async def test_loopback_transport(kite_server, kite_config, kite_plugins):
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    url = kite_server.url.replace("http://", "loopback://")
    async with caller.new_client(url) as client:
        assert client.connection.peer.transport == "loopback"
        assert await client.tell("square", 3) == 9


async def test_unknown_method(kite_client):
    with pytest.raises(MethodNotFoundError) as info:
        await kite_client.tell("nope")
    assert info.value.message == "Method not found: nope"
    assert info.value.type == "methodNotFound"


async def test_handler_error_is_generic_error_with_request_id(
    make_kite, kite_config, kite_plugins, caplog
):
    async def broken(r):
        raise ValueError("negative argument")

    server = await make_kite(methods={"broken": broken})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with pytest.raises(GenericError) as info:
            await client.tell("broken")
        assert info.value.message == "negative argument"
        assert len(info.value.id) == 16
        # the server keeps serving after the error
        assert await client.tell("kite.ping") == "pong"
    assert "handler of broken raised" in caplog.text
    assert "ValueError: negative argument" in caplog.text  # the traceback is logged


async def test_argument_error_from_accessor(kite_client):
    with pytest.raises(ArgumentError) as info:
        await kite_client.tell("square", "four")
    assert "must be a number" in info.value.message
    with pytest.raises(ArgumentError, match="Invalid array length"):
        await kite_client.tell("square", 1, 2)


async def test_request_gives_caller_identity(make_kite, kite_config, kite_plugins):
    seen = {}

    async def whoami(r):
        seen["kite"] = r.kite
        seen["username"] = r.username
        return r.kite.name

    server = await make_kite(methods={"whoami": whoami})
    kite_config.username = "alice"
    caller = Kite("caller", "1.2.3", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("whoami") == "caller"
    assert seen["kite"] == caller.identity
    assert seen["username"] == "alice"


async def test_callbacks_in_both_directions(make_kite, kite_config, kite_plugins):
    async def square_cb(r):
        number, callback = r.args.of_length(2)
        await callback(number * number)
        # the callback may carry a callback of its own
        return None

    async def twice(r):
        f = r.args.function(0)
        got = []
        await f(1, lambda value: got.append(value))
        await f(2, lambda value: got.append(value))
        return "sent"

    server = await make_kite(methods={"squareCB": square_cb, "twice": twice})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    results = []
    done = anyio.Event()

    def on_result(value):
        results.append(value)
        done.set()

    async with caller.new_client(server.url) as client:
        assert await client.tell("squareCB", 5, on_result) is None
        with anyio.fail_after(5):
            await done.wait()
        assert results == [25]

        calls = []
        nested_done = anyio.Event()

        async def f(n, reply):
            calls.append(n)
            await reply(n * 10)
            if len(calls) == 2:
                nested_done.set()

        assert await client.tell("twice", f) == "sent"
        with anyio.fail_after(5):
            await nested_done.wait()
        assert calls == [1, 2]


async def test_server_calls_back_its_caller(make_kite, kite_config, kite_plugins):
    async def ask_back(r):
        # the handler calls a method on the kite that called it
        return await r.client.tell("foo", r.args.one())

    server = await make_kite(methods={"askBack": ask_back})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)

    @caller.handle("foo")
    async def foo(r):
        return f"foo({r.args.one()})"

    async with caller.new_client(server.url) as client:
        assert await client.tell("askBack", 7) == "foo(7)"


async def test_callbacks_run_in_arrival_order(make_kite, kite_config, kite_plugins):
    async def fifty(r):
        callback = r.args.function(0)
        for i in range(50):
            callback(i)
        return "ok"

    server = await make_kite(methods={"fifty": fifty})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    seen = []
    all_seen = anyio.Event()

    async def record(i):
        # yield so that concurrent execution would reorder
        await anyio.sleep(0.001 * (i % 3))
        seen.append(i)
        if len(seen) == 50:
            all_seen.set()

    async with caller.new_client(server.url) as client:
        assert await client.tell("fifty", record) == "ok"
        with anyio.fail_after(10):
            await all_seen.wait()
    assert seen == list(range(50))


async def test_method_calls_run_concurrently(make_kite, kite_config, kite_plugins):
    # every call waits until all ten have arrived: calls run one after another never finish
    arrived = 0
    everyone = anyio.Event()

    async def gather(r):
        nonlocal arrived
        arrived += 1
        if arrived == 10:
            everyone.set()
        await everyone.wait()
        return r.args.one()

    server = await make_kite(methods={"gather": gather})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    results = {}
    async with caller.new_client(server.url) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(10):

                    async def one(i=i):
                        results[i] = await client.tell("gather", i)

                    tg.start_soon(one)
    assert results == {i: i for i in range(10)}


async def test_sync_handler_runs_in_a_thread(make_kite, kite_config, kite_plugins):
    started = threading.Event()
    release = threading.Event()

    def blocking(r):
        started.set()
        release.wait(10)  # would freeze the event loop if run on it
        return "released"

    server = await make_kite(methods={"blocking": blocking})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        answers = []
        async with anyio.create_task_group() as tg:

            async def call_blocking():
                answers.append(await client.tell("blocking"))

            tg.start_soon(call_blocking)
            await anyio.to_thread.run_sync(started.wait, 10)
            assert started.is_set()
            try:
                with anyio.fail_after(5):  # answered while the sync handler still blocks
                    answers.append(await client.tell("kite.ping"))
            finally:
                release.set()
        assert answers == ["pong", "released"]


async def test_middleware_order_and_final_func(make_kite, kite_config, kite_plugins):
    order = []

    def step(name, value=None):
        async def handler(r):
            order.append(name)
            r.context.setdefault("trail", []).append(name)
            return value

        return handler

    server = await make_kite()
    server.pre_handle(step("kite-pre"))
    server.post_handle(step("kite-post"))

    async def main(r):
        order.append("main")
        assert r.context["trail"] == ["method-pre", "kite-pre"]
        return "main-result"

    async def final(r, result, error):
        order.append("final")
        return result, error

    method = server.handle("chain", main)
    method.pre_handle(step("method-pre")).post_handle(step("method-post")).final_func(final)

    async def sqrt(r):
        n = r.args.one(float)
        if n < 0:
            raise ValueError("negative")
        return n**0.5

    async def imaginary(r, result, error):
        if error is not None:
            return f"{(-r.args.one()) ** 0.5:g}i", None
        return result, error

    server.handle("sqrt", sqrt).final_func(imaginary)

    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("chain") == "main-result"
        assert order == ["method-pre", "kite-pre", "main", "method-post", "kite-post", "final"]
        assert await client.tell("sqrt", -4) == "2i"
        assert await client.tell("sqrt", 9) == 3


async def test_pre_handler_error_stops_the_chain(make_kite, kite_config, kite_plugins):
    ran = []

    async def deny(r):
        raise ArgumentError("denied by pre handler")

    async def main(r):
        ran.append("main")

    server = await make_kite()
    server.handle("guarded", main).pre_handle(deny)
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with pytest.raises(ArgumentError, match="denied by pre handler"):
            await client.tell("guarded")
    assert ran == []


@pytest.mark.parametrize(
    ("handling", "expected"),
    [
        (MethodHandling.RETURN_METHOD, "main"),
        (MethodHandling.RETURN_FIRST, "pre"),
        (MethodHandling.RETURN_LATEST, "post"),
    ],
)
async def test_method_handling(make_kite, kite_config, kite_plugins, handling, expected):
    async def pre(r):
        return "pre"

    async def main(r):
        return "main"

    async def post(r):
        return "post"

    server = await make_kite()
    server.method_handling = handling
    server.handle("m", main).pre_handle(pre).post_handle(post)
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("m") == expected


async def test_throttling(make_kite, kite_config, kite_plugins):
    async def limited(r):
        return "ok"

    server = await make_kite()
    server.handle("limited", limited).throttle(0.2, 3)
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        for _ in range(3):
            assert await client.tell("limited") == "ok"
        with pytest.raises(RequestLimitError, match="maximum request rate"):
            await client.tell("limited")
        await anyio.sleep(0.25)  # one token back
        assert await client.tell("limited") == "ok"


async def test_timeout_and_callback_cleanup(make_kite, kite_config, kite_plugins):
    async def never(r):
        await anyio.sleep_forever()

    server = await make_kite(methods={"never": never})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with pytest.raises(KiteTimeoutError, match=r'No response to "never" method in 0\.2s'):
            await client.tell("never", timeout=0.2)
        assert client.connection.pending_callbacks == 0
        assert await client.tell("kite.ping") == "pong"


async def test_no_callback_table_growth(kite_client):
    connection = kite_client.connection
    for i in range(10_000):
        assert await kite_client.tell("square", i) == i * i
    assert connection.pending_callbacks == 0


async def test_default_timeout_from_config(make_kite, kite_config, kite_plugins):
    async def never(r):
        await anyio.sleep_forever()

    server = await make_kite(methods={"never": never})
    kite_config.timeout = 0.3
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with pytest.raises(KiteTimeoutError):
            await client.tell("never")


async def test_disconnect_fails_pending_calls_and_cancels_handlers(
    make_kite, kite_config, kite_plugins
):
    started = anyio.Event()
    cancelled = anyio.Event()

    async def hang(r):
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    server = await make_kite(methods={"hang": hang})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        async with anyio.create_task_group() as tg:
            errors = []

            async def call():
                try:
                    await client.tell("hang", timeout=None)
                except DisconnectError as exc:
                    errors.append(exc)

            tg.start_soon(call)
            with anyio.fail_after(5):
                await started.wait()
            # the server drops every connection
            await server.close()
        assert errors and errors[0].type == "disconnect"
        with anyio.fail_after(5):
            await cancelled.wait()


async def test_hooks_and_idempotent_close(kite_server, kite_config, kite_plugins):
    events = []
    kite_server.on_connect(lambda c: events.append("server-connect"))
    kite_server.on_first_request(lambda c: events.append(f"first-request {c.remote_kite.name}"))
    server_saw_disconnect = anyio.Event()

    def server_disconnect(c):
        events.append("server-disconnect")
        server_saw_disconnect.set()

    kite_server.on_disconnect(server_disconnect)
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    client = caller.new_client(kite_server.url)
    client.on_connect(lambda c: events.append("client-connect"))
    client.on_disconnect(lambda c: events.append("client-disconnect"))
    async with client:
        await client.tell("kite.ping")
        await client.tell("kite.ping")
        await client.close()
        await client.close()
    with anyio.fail_after(5):
        await server_saw_disconnect.wait()
    assert events.count("first-request caller") == 1
    assert events.index("client-connect") < events.index("client-disconnect")
    assert {"server-connect", "client-connect", "client-disconnect"} <= set(events)


async def test_dial_forever_reconnects(kite_config, kite_plugins):
    async with Kite("server", "1.0.0", config=kite_config.copy(), plugins=kite_plugins) as first:
        port = first.port
    # the server is down; dial_forever waits until one listens on that port again
    again = kite_config.copy()
    again.port = port
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    client = caller.new_client(f"http://127.0.0.1:{port}/kite", reconnect=True)
    client.backoff.initial = 0.05
    client.backoff.maximum = 0.2
    client.backoff.reset()
    connected = [anyio.Event(), anyio.Event()]
    disconnected = anyio.Event()
    count = 0

    def on_connect(c):
        nonlocal count
        connected[min(count, 1)].set()
        count += 1

    client.on_connect(on_connect)
    client.on_disconnect(lambda c: disconnected.set())
    first_ping = anyio.Event()
    async with anyio.create_task_group() as tg:
        second_ping = anyio.Event()

        async def use_client():
            async with client:  # returns once the first connection is up
                assert await client.tell("kite.ping") == "pong"
                first_ping.set()
                with anyio.fail_after(10):
                    await connected[1].wait()
                assert await client.tell("kite.ping") == "pong"
                second_ping.set()

        tg.start_soon(use_client)
        await anyio.sleep(0.3)  # a few failed attempts first
        async with Kite("server", "1.0.0", config=again, plugins=kite_plugins):
            with anyio.fail_after(10):
                await first_ping.wait()
        with anyio.fail_after(10):
            await disconnected.wait()
        async with Kite("server", "1.0.0", config=again, plugins=kite_plugins):
            with anyio.fail_after(10):
                await second_ping.wait()
    assert count == 2


async def test_body_exceptions_propagate_unwrapped(kite_server, kite_config, kite_plugins):
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    with pytest.raises(MethodNotFoundError):
        async with caller.new_client(kite_server.url) as client:
            await client.tell("missing")
    with pytest.raises(KeyError):
        async with Kite("other", "1.0.0", config=kite_config, plugins=kite_plugins):
            raise KeyError("mine")


async def test_dial_forever_fails_over_between_urls(make_kite, kite_config, kite_plugins):
    dead = Kite("dead", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with dead:
        dead_url = dead.url  # nothing listens there any more
    alive = await make_kite("alive")
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    client = caller.new_client(f"{dead_url},{alive.url}", reconnect=True)
    client.backoff.initial = 0.02
    client.backoff.reset()
    assert client.urls == [dead_url, alive.url]
    with anyio.fail_after(10):
        async with client:
            assert client.url == alive.url
            assert await client.tell("kite.ping") == "pong"
