"""How a connection runs incoming calls: a call that never waits is run by the reader itself;
one that waits carries on in the same task while another task takes over reading. These tests
hold the behaviour that must not change with that: calls still run concurrently, a handler's
cancel scopes work across its waits, and a waiting handler is cancelled when its connection
ends."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from kitecore import Kite

pytestmark = pytest.mark.anyio


async def test_a_waiting_call_does_not_hold_up_quick_ones(make_kite, kite_config, kite_plugins):
    release = anyio.Event()

    async def slow(r):
        await release.wait()
        return "slow done"

    async def quick(r):
        return r.args.one() + 1

    async def unblock(r):
        release.set()
        return "released"

    server = await make_kite(methods={"slow": slow, "quick": quick, "unblock": unblock})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        results: dict[str, object] = {}
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def call_slow() -> None:
                    results["slow"] = await client.tell("slow")

                tg.start_soon(call_slow)
                # many quick calls while the slow one waits: each reader hand-over must leave
                # a reader behind
                assert [await client.tell("quick", i) for i in range(50)] == list(range(1, 51))
                assert "slow" not in results
                assert await client.tell("unblock") == "released"
        assert results == {"slow": "slow done"}
        # and the connection still serves after the hand-overs
        assert await client.tell("quick", 1) == 2


async def test_cancel_scopes_of_a_handler_work_across_its_waits(
    make_kite, kite_config, kite_plugins
):
    async def bounded(r):
        # a cancel scope entered before the first wait and left after it: it must be left in
        # the task that entered it
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(5)
        with anyio.fail_after(5):
            await anyio.lowlevel.checkpoint()
        return scope.cancelled_caught

    server = await make_kite(methods={"bounded": bounded})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        with anyio.fail_after(10):
            assert await client.tell("bounded") is True
            assert await client.tell("bounded") is True


async def test_a_waiting_handler_is_cancelled_when_its_connection_ends(
    make_kite, kite_config, kite_plugins
):
    started = anyio.Event()
    cancelled = anyio.Event()

    async def forever(r):
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    server = await make_kite(methods={"forever": forever})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    with anyio.fail_after(10):
        async with caller.new_client(server.url) as client:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.tell("forever", timeout=None)

                tg.start_soon(call)
                await started.wait()
                tg.cancel_scope.cancel()
            await client.close()
        await cancelled.wait()
    # the server kite keeps serving others
    async with caller.new_client(server.url) as client:
        assert await client.tell("kite.ping") == "pong"
