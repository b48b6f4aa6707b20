"""Reply timeouts: short ones are exact, long ones share a coarse timer that is never early."""

from __future__ import annotations

import anyio
import pytest

from kitecore import Kite, KiteTimeoutError

pytestmark = pytest.mark.anyio


async def never(r):
    await anyio.sleep_forever()


@pytest.mark.parametrize("timeout", [0.3, 1.0, 1.3])
async def test_timeout_fires_after_the_deadline_and_frees_the_callback(
    make_kite, kite_client, timeout
):
    # kite_client too: kites started in the test body coexist with other fixtures' kites
    server = await make_kite("slow", methods={"never": never})
    caller = Kite("caller", "1.0.0", config=kite_client.kite.config, plugins=server.plugins)
    async with caller.new_client(server.url) as client:
        started = anyio.current_time()
        with pytest.raises(KiteTimeoutError, match=f"in {timeout:g}s"):
            await client.tell("never", timeout=timeout)
        elapsed = anyio.current_time() - started
        assert timeout <= elapsed < timeout + 0.5  # never early, at most a tick (+ noise) late
        assert client.connection.pending_callbacks == 0
        assert await client.tell("kite.ping") == "pong"


async def test_many_pending_calls_time_out_together(make_kite, kite_config, kite_plugins):
    server = await make_kite("slow", methods={"never": never})
    caller = Kite("caller", "1.0.0", config=kite_config, plugins=kite_plugins)
    outcomes = []
    async with caller.new_client(server.url) as client:

        async def call(i):
            try:
                await client.tell("never", timeout=1.0 + i * 0.01)
            except KiteTimeoutError:
                outcomes.append(i)

        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(call, i)
        assert anyio.current_time() - started >= 1.49
        assert sorted(outcomes) == list(range(50))
        assert client.connection.pending_callbacks == 0
