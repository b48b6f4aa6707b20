"""Kontrol dies (SIGKILL) and comes back: kites keep talking, then register again by themselves.

A real ``python -m kite_kontrol`` process with memory storage serves on a fixed loopback
port; four kites in the test process get kite.keys through ``registerMachine`` and
``register_forever``. While Kontrol is down, a client found through Kontrol before the crash
keeps calling, and a token fetched before the crash still opens a new connection. Kontrol is
restarted on the same port and data directory (so with the same key pair but an empty
registry): every kite must be back in Kontrol within the bound the backoffs allow, without any
kite being restarted.
"""

from __future__ import annotations

import contextlib
import time

import anyio
import pytest
from kite_kontrol.testing import KontrolProcess, machine_key

from kitecore import Authentication, Config, DialError, Kite
from kitecore.backoff import Backoff
from kitecore.client import Client
from kitecore.plugins import PluginRegistry
from kitecore.testing import whoami

pytestmark = pytest.mark.anyio

ENVIRONMENT = "faults"

#: The kites' reconnect backoff to Kontrol (the default starts at 0.5 s and grows to 60 s).
RECONNECT = Backoff(initial=0.05, multiplier=1.5, randomization=0.5, maximum=0.4)
#: The kites' backoff between failed registrations (default 1 s growing to 30 s).
REGISTER = Backoff(initial=0.1, multiplier=1.5, randomization=0.5, maximum=0.5)
#: Time for the work itself once Kontrol is back: WebSocket handshake, ``register``, Kontrol's
#: ``kite.heartbeat`` call back, and the observer's ``getKites``, on a loaded 2-core machine.
WORK_ALLOWANCE = 2.5
#: How long Kontrol stays down: long enough for several reconnect attempts to fail.
DOWNTIME = 1.5


def recovery_bound() -> float:
    """The longest a kite may take to be registered again once Kontrol serves.

    When Kontrol comes back, a kite's reconnect loop is asleep for at most one (capped,
    randomized) reconnect wait, and its registration loop either waits for that connection or
    sleeps for at most one registration wait; then the work itself.
    """
    return (
        RECONNECT.maximum * (1 + RECONNECT.randomization)
        + REGISTER.maximum * (1 + REGISTER.randomization)
        + WORK_ALLOWANCE
    )


async def registered_ids(observer: Kite, url: str, key: str) -> set[str]:
    """Ids of the kites Kontrol knows in :data:`ENVIRONMENT`, over a fresh connection."""
    async with observer.new_client(url, auth=Authentication("kiteKey", key)) as client:
        answer = await client.tell("getKites", {"query": {"environment": ENVIRONMENT}})
    return {entry["kite"]["id"] for entry in answer["kites"]}


def copy_backoff(backoff: Backoff) -> Backoff:
    return Backoff(
        initial=backoff.initial,
        multiplier=backoff.multiplier,
        randomization=backoff.randomization,
        maximum=backoff.maximum,
    )


async def test_kites_survive_and_reregister_after_kontrol_is_killed(
    kontrol_process: KontrolProcess, base_config: Config, plugins: PluginRegistry
) -> None:
    url = kontrol_process.url
    async with contextlib.AsyncExitStack() as stack:
        observer = await stack.enter_async_context(
            Kite("observer", "1.0.0", config=base_config.copy(), plugins=plugins)
        )
        observer_key = await machine_key(observer, url, "observer")

        registrations: dict[str, int] = {}
        kites: dict[str, Kite] = {}
        for name, username in [
            ("math", "bob"),
            ("fs", "bob"),
            ("db", "carol"),
            ("caller", "alice"),
        ]:
            config = base_config.copy()
            config.apply_kite_key(await machine_key(observer, url, username))
            config.environment = ENVIRONMENT
            kite = Kite(name, "1.0.0", config=config, plugins=plugins)
            kite.handle("whoami", whoami)
            await stack.enter_async_context(kite)

            def count(_result, name: str = name) -> None:
                registrations[name] = registrations.get(name, 0) + 1

            kite.kontrol_client.on_register(count)
            await kite.kontrol_client.register_forever(backoff=copy_backoff(REGISTER))
            kites[name] = kite
        lost_kontrol: list[anyio.Event] = []
        for kite in kites.values():
            with anyio.fail_after(10):
                await kite.kontrol_client.registered.wait()
            kontrol_connection = kite.kontrol_client.client
            assert kontrol_connection is not None
            kontrol_connection.backoff = copy_backoff(RECONNECT)
            lost = anyio.Event()
            kontrol_connection.on_disconnect(lambda _client, lost=lost: lost.set())
            lost_kontrol.append(lost)
        all_ids = {kite.id for kite in kites.values()}
        assert len(all_ids) == len(kites)
        assert await registered_ids(observer, url, observer_key) == all_ids
        assert all(registrations[name] == 1 for name in kites)

        # Found through Kontrol before the crash: one dialed, one dialed only while it is down.
        caller = kites["caller"]
        [math] = await caller.get_kites(id=kites["math"].id)
        [database] = await caller.get_kites(username="carol", environment=ENVIRONMENT, name="db")
        assert math.auth is not None and math.auth.type == "token"
        await stack.enter_async_context(math)
        assert await math.tell("whoami") == "alice"

        await kontrol_process.kill()
        with anyio.fail_after(5):  # every kite notices its Kontrol connection is gone
            for lost in lost_kontrol:
                await lost.wait()
        with pytest.raises(DialError):
            async with observer.new_client(url):
                pass

        down_until = time.monotonic() + DOWNTIME
        calls = 0
        while time.monotonic() < down_until:
            assert await math.tell("whoami") == "alice"
            calls += 1
            await anyio.sleep(0.05)
        assert calls >= 10
        await stack.enter_async_context(database)  # the token alone opens a new connection
        assert await database.tell("whoami") == "alice"
        assert all(registrations[name] == 1 for name in kites)

        await kontrol_process.start()
        started = time.monotonic()
        bound = recovery_bound()
        seen: set[str] = set()
        with anyio.move_on_after(bound):
            while seen != all_ids:
                with contextlib.suppress(Exception):  # the observer may race Kontrol's start
                    seen = await registered_ids(observer, url, observer_key)
                if seen != all_ids:
                    await anyio.sleep(0.05)
        elapsed = time.monotonic() - started
        assert seen == all_ids, (
            f"after {elapsed:.2f}s (bound {bound:.2f}s) Kontrol knows {len(seen)} of "
            f"{len(all_ids)} kites\n{kontrol_process.log_tail()}"
        )
        assert all(registrations[name] == 2 for name in kites), registrations

        # Nothing was restarted: the same connection to math still serves, and discovery works.
        assert await math.tell("whoami") == "alice"
        [again] = await caller.get_kites(id=kites["fs"].id)
        assert isinstance(again, Client) and again.url == kites["fs"].url
        async with again:
            assert await again.tell("whoami") == "alice"
