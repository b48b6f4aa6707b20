"""The contract every transport must pass (see :mod:`kitecore.transport`).

It runs real kites over the transport: one serves, another dials it with the transport named
explicitly (never ``auto``), so a test cannot pass over some other transport. Use it from a
transport's test module by subclassing :class:`TransportContract`, naming the transport and
the plugins the kites load, and saying how a URL for it looks::

    from kitecore.contracts.transport import TransportContract

    class TestSockJSTransport(TransportContract):
        transport = "sockjs"
        plugins = ("websocket", "sockjs")

        def url_for(self, kite):
            return kite.url                      # http://127.0.0.1:PORT/kite

        def unused_url(self, port):
            return f"http://127.0.0.1:{port}/kite"

The suite uses the ``kite_config`` and ``make_kite`` fixtures of :mod:`kitecore.testing`
(loaded as a pytest plugin with kitecore) and overrides ``kite_plugins`` with :attr:`plugins`.
Its tests are anyio tests: they run on whatever ``anyio_backend`` the test module's
``conftest.py`` gives (asyncio and trio for a portable transport). Synchronisation is by
events; the ``fail_after`` bounds only turn a hang into a failure.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from kitecore.client import Client, DialError
from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.errors import DisconnectError
from kitecore.testing import MakeKite, free_port

__all__ = ["MEBIBYTE", "TransportContract"]

#: The size of the large message every transport must carry whole.
MEBIBYTE = 1024 * 1024

#: Upper bound on any single wait in the suite (a hang fails the test instead).
WAIT = 10.0


async def _echo(r: Any) -> Any:
    return r.args.one()


async def _ask_back(r: Any) -> Any:
    """Calls a method of the kite that called it, on the same connection."""
    return await r.client.tell("twice", r.args.one())


async def _call_back(r: Any) -> str:
    """Calls the caller's callback, handing it a callback of the server's own."""
    number, callback = r.args.of_length(2)

    async def reply(value: Any) -> None:
        await callback("reply", value)

    await callback("square", number * number, reply)
    return "sent"


class TransportContract:
    """Tests every transport must pass; see the module docstring for how to use it."""

    #: The transport's name, as users type it (``websocket``, ``loopback``, ``sockjs``).
    transport: str = ""
    #: The plugins both kites load (``KITE_PLUGINS`` names); it must include :attr:`transport`.
    plugins: tuple[str, ...] = ("websocket", "loopback")

    def url_for(self, kite: Kite) -> str:
        """The URL a client dials to reach the running ``kite`` over this transport."""
        return kite.url

    def unused_url(self, port: int) -> str:
        """A URL this transport accepts where nothing listens (``port`` is free)."""
        return f"http://127.0.0.1:{port}/kite"

    #: A URL this transport does not accept.
    foreign_url: str = "gopher://127.0.0.1:70/kite"

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture
    def kite_plugins(self) -> PluginRegistry:
        """The registry both kites use: :attr:`plugins`, strictly (all must be installed)."""
        assert self.transport in self.plugins, "plugins must include the transport under test"
        return load_plugins(names=self.plugins, strict=True)

    @pytest.fixture
    async def server(self, make_kite: MakeKite) -> Kite:
        """A running kite serving ``echo``, ``askBack`` and ``callBack``."""
        return await make_kite(
            "server", methods={"echo": _echo, "askBack": _ask_back, "callBack": _call_back}
        )

    @pytest.fixture
    def caller(self, kite_config: Config, kite_plugins: PluginRegistry) -> Kite:
        """The dialing kite; it serves ``twice`` to the kites it calls."""
        caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)

        @caller.handle("twice")
        async def twice(r: Any) -> Any:
            return r.args.one(float) * 2

        return caller

    def client(self, caller: Kite, server: Kite) -> Client:
        """A (not yet dialed) client of ``server`` over this transport."""
        return caller.new_client(self.url_for(server), transport=self.transport)

    # -- tests ------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_transport_is_registered(self, kite_plugins: PluginRegistry) -> None:
        transport = kite_plugins.transport(self.transport)
        assert transport.name == self.transport
        assert isinstance(transport.priority, int)

    @pytest.mark.anyio
    async def test_dial_and_call(self, caller: Kite, server: Kite) -> None:
        async with self.client(caller, server) as client:
            assert client.connection is not None
            assert client.connection.peer.transport == self.transport
            assert await client.tell("kite.ping") == "pong"
            assert await client.tell("echo", {"a": [1, "two", None]}) == {"a": [1, "two", None]}

    @pytest.mark.anyio
    async def test_server_calls_the_caller(self, caller: Kite, server: Kite) -> None:
        async with self.client(caller, server) as client:
            assert await client.tell("askBack", 21) == 42

    @pytest.mark.anyio
    async def test_callbacks_both_ways(self, caller: Kite, server: Kite) -> None:
        got: list[Any] = []
        replied = anyio.Event()

        async def callback(kind: str, value: Any, reply: Any = None) -> None:
            got.append((kind, value))
            if reply is not None:
                await reply(value + 1)  # the server's callback, called from this side
            else:
                replied.set()

        async with self.client(caller, server) as client:
            assert await client.tell("callBack", 7, callback) == "sent"
            with anyio.fail_after(WAIT):
                await replied.wait()
        assert got == [("square", 49), ("reply", 50)]

    @pytest.mark.anyio
    async def test_one_mebibyte_message(self, caller: Kite, server: Kite) -> None:
        big = "x" * (MEBIBYTE - 1) + "é"  # a multi-byte character at the very end
        async with self.client(caller, server) as client:
            assert await client.tell("echo", big) == big
            assert await client.tell("kite.ping") == "pong"  # still usable afterwards

    @pytest.mark.anyio
    async def test_concurrent_calls(self, caller: Kite, make_kite: MakeKite) -> None:
        # every call waits until all have arrived: calls handled one after another never finish
        count = 32
        arrived = 0
        everyone = anyio.Event()

        async def gather(r: Any) -> Any:
            nonlocal arrived
            arrived += 1
            if arrived == count:
                everyone.set()
            await everyone.wait()
            return r.args.one()

        server = await make_kite("gather", methods={"gather": gather})
        results: dict[int, Any] = {}
        async with self.client(caller, server) as client:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as group:
                    for i in range(count):

                        async def one(i: int = i) -> None:
                            results[i] = await client.tell("gather", i)

                        group.start_soon(one)
        assert results == {i: i for i in range(count)}

    @pytest.mark.anyio
    async def test_peer_closes_server_sees_disconnect(self, caller: Kite, server: Kite) -> None:
        gone = anyio.Event()
        server.on_disconnect(lambda connection: gone.set())
        async with self.client(caller, server) as client:
            assert await client.tell("kite.ping") == "pong"
        with anyio.fail_after(WAIT):
            await gone.wait()

    @pytest.mark.anyio
    async def test_server_closes_client_sees_disconnect(
        self, caller: Kite, make_kite: MakeKite
    ) -> None:
        started = anyio.Event()

        async def hang(r: Any) -> None:
            started.set()
            await anyio.sleep_forever()

        server = await make_kite("hang", methods={"hang": hang})
        gone = anyio.Event()
        errors: list[DisconnectError] = []
        client = self.client(caller, server)
        client.on_disconnect(lambda c: gone.set())
        async with client:

            async def call() -> None:
                try:
                    await client.tell("hang", timeout=None)
                except DisconnectError as exc:
                    errors.append(exc)

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as group:
                    group.start_soon(call)
                    await started.wait()
                    await server.close()
                await gone.wait()
        assert len(errors) == 1 and errors[0].type == "disconnect"

    @pytest.mark.anyio
    async def test_dial_where_nothing_listens_fails_clearly(self, caller: Kite) -> None:
        url = self.unused_url(free_port())
        with anyio.fail_after(WAIT), pytest.raises(DialError) as info:
            async with caller.new_client(url, transport=self.transport):
                pass
        assert url in str(info.value)

    @pytest.mark.anyio
    async def test_foreign_url_is_refused(self, caller: Kite, kite_plugins: PluginRegistry) -> None:
        assert not kite_plugins.transport(self.transport).accepts(self.foreign_url)
        with anyio.fail_after(WAIT), pytest.raises(DialError):
            async with caller.new_client(self.foreign_url, transport=self.transport):
                pass
