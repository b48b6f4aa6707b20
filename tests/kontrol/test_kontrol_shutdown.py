"""A Kontrol shutting down, seen by kites that know more than one Kontrol: a call it refuses
(it did not run it) is made on the next Kontrol, over real sockets on 127.0.0.1."""

from __future__ import annotations

import anyio
import pytest
from kontrol_helpers import kite_key

from kitecore import ShuttingDownError
from kitecore.storage.memory import MemoryStorage

pytestmark = pytest.mark.anyio


async def leaving_and_staying(make_kontrol):
    """Two Kontrols sharing one storage; the first serves ``hold``, a call that waits for
    the returned ``hold`` event (``held`` is set once it runs)."""
    storage = MemoryStorage()
    leaving = await make_kontrol(storage=storage)
    staying = await make_kontrol(storage=storage)
    hold = anyio.Event()
    held = anyio.Event()

    async def held_call(r):  # a call in flight keeps the leaving Kontrol draining
        held.set()
        await hold.wait()

    leaving.kite.handle("hold", held_call)
    return leaving, staying, hold, held


async def begin_shutdown(group, kontrol) -> None:
    """Start ``kontrol``'s graceful shutdown in ``group``; return once it refuses calls."""
    group.start_soon(kontrol.kite.shutdown, 10.0)
    while not kontrol.kite.shutting_down:
        await anyio.lowlevel.checkpoint()


def caller_of(make_kite, leaving, urls):
    caller = make_kite("caller")
    caller.config.apply_kite_key(leaving.create_kite_key("alice"))
    caller.config.kontrol_url = urls
    caller.config.timeout = 10.0
    return caller


async def test_a_call_a_kontrol_shutting_down_refuses_is_made_on_the_next(make_kontrol, make_kite):
    leaving, staying, hold, held = await leaving_and_staying(make_kontrol)
    svc = make_kite("svc", username="alice")
    caller = caller_of(make_kite, leaving, f"{leaving.url},{staying.url}")
    async with (
        svc,
        svc.new_client(staying.url, auth=kite_key(staying)) as registration,
        caller,
        caller.new_client(leaving.url, auth=kite_key(leaving)) as holder,
        anyio.create_task_group() as group,
    ):
        await registration.tell("register", {"url": svc.url})
        assert [c.url for c in await caller.get_kites(name="svc")] == [svc.url]
        assert caller.kontrol_client.client.url == leaving.url  # the first URL, so far

        group.start_soon(holder.tell, "hold")
        await held.wait()
        await begin_shutdown(group, leaving)

        async def drain_soon() -> None:  # after the refusal: then the connection closes
            await anyio.sleep(0.3)
            hold.set()

        group.start_soon(drain_soon)
        with anyio.fail_after(10):
            found = await caller.get_kites(name="svc")
        assert hold.is_set()  # it waited for the leaving Kontrol to let go
        assert [c.url for c in found] == [svc.url]
        assert caller.kontrol_client.client.url == staying.url


async def test_with_one_kontrol_url_the_refusal_reaches_the_caller(make_kontrol, make_kite):
    leaving, _, hold, held = await leaving_and_staying(make_kontrol)
    caller = caller_of(make_kite, leaving, leaving.url)
    async with (
        caller,
        caller.new_client(leaving.url, auth=kite_key(leaving)) as holder,
        anyio.create_task_group() as group,
    ):
        await caller.kontrol_client.call("getKey")  # connected
        group.start_soon(holder.tell, "hold")
        await held.wait()
        await begin_shutdown(group, leaving)
        with anyio.fail_after(5), pytest.raises(ShuttingDownError):
            await caller.get_kites(name="svc")
        hold.set()
