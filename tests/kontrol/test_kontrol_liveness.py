"""Heartbeats keep registrations alive; silence lets them expire (short tunable timings)."""

from __future__ import annotations

import dataclasses
import logging

import anyio
import pytest
from kontrol_helpers import kite_key

from kitecore import Kite, Query
from kitecore.plugins import load_plugins

pytestmark = pytest.mark.anyio


async def test_heartbeat_keeps_kite_past_ttl_and_silence_expires_it(kontrol, make_kite):
    ttl = kontrol.settings.key_ttl
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        await anyio.sleep(ttl * 2.5)  # several TTLs: only heartbeats can keep it
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
    # the kite is gone (no more pings): the entry expires within one TTL
    await anyio.sleep(ttl + 0.3)
    assert await kontrol.storage.get(Query(id=kite.id)) == []


async def test_connected_kite_that_never_pings_expires(kontrol, make_kite):
    ttl = kontrol.settings.key_ttl
    kite = make_kite()
    calls = []
    asked = anyio.Event()

    async def silent_heartbeat(r):
        calls.append(r.args.as_list()[0])  # accepts the heartbeat request, never pings
        asked.set()

    kite.handle("kite.heartbeat", silent_heartbeat)
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        await asked.wait()  # asked in the background, once register was answered
        assert calls == [kontrol.settings.heartbeat_interval]
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
        await anyio.sleep(ttl + 0.3)
        assert await kontrol.storage.get(Query(id=kite.id)) == []
        await client.tell("register", {"url": kite.url})  # registering again brings it back
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1


async def test_register_succeeds_when_kite_refuses_heartbeat_and_kontrol_says_why(
    kontrol, make_kite
):
    """Fire and log (as Go): a failing kite.heartbeat is a WARNING, not a failed register."""
    kite = make_kite()
    warned = _Warnings("kite.heartbeat on")

    async def broken_heartbeat(r):
        raise ValueError("no heartbeats here")

    kite.handle("kite.heartbeat", broken_heartbeat)
    handlers_logger = logging.getLogger("kite_kontrol.heartbeat")
    handlers_logger.addHandler(warned)
    try:
        async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
            result = await client.tell("register", {"url": kite.url})
            assert result["url"] == kite.url
            with anyio.fail_after(10):
                await warned.seen.wait()
    finally:
        handlers_logger.removeHandler(warned)
    (record,) = warned.records
    assert record.levelno == logging.WARNING
    assert "no heartbeats here" in record.getMessage() and kite.id in record.getMessage()


class _Warnings(logging.Handler):
    """Collects the WARNING records containing ``text``; ``seen`` is set by the first."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.records: list[logging.LogRecord] = []
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            self.seen.set()


async def test_register_answers_before_the_kite_answers_heartbeat(kontrol, make_kite):
    """Kontrol does not hold ``register`` until kite.heartbeat is answered (issue 10.5): a kite
    that answers kite.heartbeat only after its registration returned registers fine, and its
    pings keep it alive."""
    kite = make_kite()
    registered = anyio.Event()
    pinged = anyio.Event()

    async def heartbeat_after_register(r):
        interval, ping = r.args.number(0), r.args.function(1)
        await registered.wait()

        async def tick():
            while True:
                ping()
                pinged.set()
                await anyio.sleep(interval)

        r.client.connection.spawn(tick)

    kite.handle("kite.heartbeat", heartbeat_after_register)
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        with anyio.fail_after(kontrol.settings.heartbeat_call_timeout / 2):
            result = await client.tell("register", {"url": kite.url})
        registered.set()
        assert result == {"url": kite.url, "heartbeatInterval": 0}
        await pinged.wait()
        await anyio.sleep(kontrol.settings.key_ttl * 2)  # only its pings can keep it
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1


@pytest.mark.parametrize("transport", ["websocket", "sockjs"])
@pytest.mark.parametrize("closing_side", ["kite", "kontrol"])
async def test_a_connection_closing_before_heartbeat_is_answered_is_no_warning(
    make_kontrol, base_config, caplog, transport, closing_side
):
    """A connection closed normally (by the kite or by Kontrol) while Kontrol's kite.heartbeat
    call is pending is logged at DEBUG, never as a WARNING about a failed heartbeat."""
    caplog.set_level(logging.DEBUG, logger="kite_kontrol")
    plugins = load_plugins(names=["websocket", "sockjs"])
    kontrol = await make_kontrol(plugins=plugins)
    config = base_config.copy()
    config.username = "alice"
    kite = Kite("math", "1.0.0", config=config, plugins=plugins)
    asked = anyio.Event()
    gone = anyio.Event()
    kontrol_side = []

    async def slow_heartbeat(r):
        asked.set()
        await anyio.sleep_forever()

    kite.handle("kite.heartbeat", slow_heartbeat)
    kontrol.kite.on_connect(kontrol_side.append)
    kontrol.kite.on_disconnect(lambda client: gone.set())
    async with kite:
        client = kite.new_client(kontrol.url, auth=kite_key(kontrol), transport=transport)
        async with client:
            async with anyio.create_task_group() as group:
                group.start_soon(client.tell, "register", {"url": kite.url})
                await asked.wait()
                if closing_side == "kontrol":
                    await kontrol_side[0].close()
                    await gone.wait()
                    await anyio.wait_all_tasks_blocked()
                group.cancel_scope.cancel()
        await gone.wait()
        await anyio.wait_all_tasks_blocked()
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("kite_kontrol") and r.levelno >= logging.WARNING
    ]
    assert warnings == []


async def test_kontrol_keeps_its_own_registration(kontrol):
    await anyio.sleep(kontrol.settings.key_ttl * 2)
    (record,) = await kontrol.storage.get(Query(id=kontrol.identity.id))
    assert record.url == kontrol.url


async def test_heartbeats_keep_the_registration_past_kontrols_idle_timeout(
    make_kontrol, base_config, make_kite
):
    """Kontrol closes idle connections, but a registered kite's heartbeats are messages."""
    config = base_config.copy()
    config.idle_timeout = 0.6  # heartbeats come every 0.1 s: room for a loaded machine's pauses
    kontrol = await make_kontrol(config=config)
    kite = make_kite()
    async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
        await client.tell("register", {"url": kite.url})
        connection = client.connection
        await anyio.sleep(1.8)  # three idle timeouts
        assert client.connection is connection
        assert connection is not None and not connection.closed
        assert len(await kontrol.storage.get(Query(id=kite.id))) == 1
    async with kite.new_client(kontrol.url, auth=kite_key(kontrol)) as idle:
        await idle.tell("getKey")
        with anyio.fail_after(10):
            await idle.connection.wait_closed()  # no heartbeats, no calls: closed


async def test_an_unanswered_heartbeat_call_is_given_up_after_its_timeout(
    make_kontrol, settings, make_kite
):
    """Nothing waits for kite.heartbeat per registration; a call the kite never answers is
    still given up after ``heartbeat_call_timeout`` (a WARNING), so it does not keep the
    connection busy, and the kite's registration is answered regardless."""
    kontrol = await make_kontrol(settings=dataclasses.replace(settings, heartbeat_call_timeout=0.3))
    kite = make_kite()
    asked = anyio.Event()
    never = anyio.Event()

    async def silent_heartbeat(r):
        asked.set()
        await never.wait()

    kite.handle("kite.heartbeat", silent_heartbeat)
    warnings = _Warnings('No response to "kite.heartbeat" method in 0.3s')
    logger = logging.getLogger("kite_kontrol.heartbeat")
    logger.addHandler(warnings)
    try:
        async with kite, kite.new_client(kontrol.url, auth=kite_key(kontrol)) as client:
            await client.tell("register", {"url": kite.url})
            await asked.wait()
            assert kontrol.heartbeat_calls.pending == 1
            with anyio.fail_after(5):
                await warnings.seen.wait()
            assert kontrol.heartbeat_calls.pending == 0
            (connection,) = [c for c in kontrol.kite._connections() if not c.closed]
            assert not connection.in_flight
            never.set()
    finally:
        logger.removeHandler(warnings)
    assert kite.id in warnings.records[0].getMessage()
