"""The interceptor seam: server and client interceptors wrap real calls over real sockets."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from kitecore import Kite, hookimpl
from kitecore.interceptors import ClientCall, ServerCall, error_type, incoming_metadata
from kitecore.plugins import load_plugins
from kitecore.protocol.errors import (
    ArgumentError,
    AuthenticationError,
    GenericError,
    KiteTimeoutError,
    MethodNotFoundError,
)
from kitecore.testing import CORE_PLUGINS, square

pytestmark = pytest.mark.anyio


async def fail(r: Any) -> None:
    raise RuntimeError("boom")


def recorder(seen: list[Any], label: str) -> Any:
    async def record(call: Any, proceed: Any) -> Any:
        seen.append((label, "in", call.method))
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            seen.append((label, "out", call.method, error_type(error)))

    return record


async def test_server_interceptor_sees_method_caller_outcome_and_error_type(
    make_kite: Any, kite_config: Any, kite_plugins: Any
) -> None:
    seen: list[Any] = []
    server = await make_kite("server", methods={"square": square, "fail": fail, "slow": _slow})
    server.handle("strict", square, auth=True)

    async def record(call: ServerCall, proceed: Any) -> Any:
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:  # username is known once proceed() has authenticated the call
            seen.append(
                (call.method, call.request.username, error_type(error), call.peer.transport)
            )

    server.add_interceptor(server=record)  # live at once on a serving kite
    caller_config = kite_config.copy()
    caller_config.username = "alice"
    caller = Kite("caller", "1.0.0", config=caller_config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("square", 3) == 9
        with pytest.raises(GenericError, match="boom") as failed:
            await client.tell("fail")
        with pytest.raises(ArgumentError):
            await client.tell("square", "x")
        with pytest.raises(AuthenticationError):
            await client.tell("strict", 2)
        with pytest.raises(MethodNotFoundError):
            await client.tell("nothing")
    assert seen == [
        ("square", "alice", "", "websocket"),
        ("fail", "alice", "genericError", "websocket"),
        ("square", "alice", "argumentError", "websocket"),
        ("strict", "alice", "authenticationError", "websocket"),
    ]  # calls of unknown methods are answered before the interceptors
    assert failed.value.id  # the request id the caller sees in its error


async def _slow(r: Any) -> None:
    await anyio.sleep(10)


async def test_interceptors_from_a_plugin_nest_in_order_on_both_sides(make_kite: Any) -> None:
    seen: list[Any] = []

    class Plugin:
        __name__ = "recording"

        @hookimpl
        def kite_register_interceptors(self, kite: Any, register: Any) -> None:
            register(server=recorder(seen, "s1"), client=recorder(seen, "c1"))
            register(server=recorder(seen, "s2"))
            register(client=recorder(seen, "c2"))

    plugins = load_plugins(names=CORE_PLUGINS, extra_plugins=[Plugin()])
    server = await make_kite("server", methods={"square": square, "slow": _slow})
    config = server.config.copy()
    caller = Kite("caller", "1.0.0", config=config, plugins=plugins)
    # the server kite came from make_kite's registry: give it the plugin's interceptors too
    plugins.pm.hook.kite_register_interceptors(kite=server, register=server.add_interceptor)
    async with caller.new_client(server.url) as client:
        assert await client.tell("square", 2) == 4
        with pytest.raises(KiteTimeoutError):
            await client.tell("slow", timeout=0.5)
        seen_before_close = list(seen)
    # caller's own kite also got the plugin's server interceptors; only the client ones ran
    assert seen_before_close == [
        ("c1", "in", "square"),
        ("c2", "in", "square"),
        ("s1", "in", "square"),
        ("s2", "in", "square"),
        ("s2", "out", "square", ""),
        ("s1", "out", "square", ""),
        ("c2", "out", "square", ""),
        ("c1", "out", "square", ""),
        ("c1", "in", "slow"),
        ("c2", "in", "slow"),
        ("s1", "in", "slow"),
        ("s2", "in", "slow"),
        ("c2", "out", "slow", "timeout"),
        ("c1", "out", "slow", "timeout"),
    ]


async def test_client_metadata_rides_in_the_call_options(make_kite: Any) -> None:
    received: list[Any] = []

    async def server_side(call: ServerCall, proceed: Any) -> Any:
        received.append((dict(call.metadata), sorted(call.options)))
        return await proceed()

    async def client_side(call: ClientCall, proceed: Any) -> Any:
        call.metadata["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        return await proceed()

    server = await make_kite("server", methods={"square": square})
    server.add_interceptor(server=server_side)
    caller = await make_kite("caller")
    async with caller.new_client(server.url) as client:
        assert await client.tell("square", 5) == 25  # no metadata: no field
        caller.add_interceptor(client=client_side)
        assert await client.tell("square", 6) == 36
    plain = ["authentication", "kite", "responseCallback", "withArgs"]
    assert received == [
        ({}, plain),
        ({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, sorted([*plain, "metadata"])),
    ]


def test_incoming_metadata_keeps_only_strings() -> None:
    assert incoming_metadata({}) == {}
    assert incoming_metadata({"metadata": None}) == {}
    assert incoming_metadata({"metadata": "traceparent"}) == {}
    assert incoming_metadata({"metadata": {"a": "1", "b": 2, "c": None}}) == {"a": "1"}


def test_error_type() -> None:
    assert error_type(None) == ""
    assert error_type(ArgumentError("x")) == "argumentError"
    assert error_type(ValueError("x")) == "genericError"
    assert error_type(SimpleNamespace(type="argumentError")) == "cancelled"  # type: ignore[arg-type]
    assert error_type(KeyboardInterrupt()) == "cancelled"


_CURRENT: Any = __import__("contextvars").ContextVar("observed", default=None)


def observer(seen: list[Any], label: str, set_var: bool = False) -> Any:
    def start(call: Any) -> Any:
        seen.append((label, "start", call.method))
        return _CURRENT.set(label) if set_var else label

    def end(call: Any, state: Any, error: BaseException | None) -> None:
        if set_var:
            _CURRENT.reset(state)
        else:
            assert state == label
        seen.append((label, "end", call.method, error_type(error)))

    return start, end


async def test_observers_watch_both_sides_outside_or_inside_the_interceptors(
    make_kite: Any,
) -> None:
    seen: list[Any] = []
    handler_saw: list[Any] = []

    async def look(r: Any) -> int:
        handler_saw.append(_CURRENT.get())
        return 1

    server = await make_kite("server", methods={"square": square, "fail": fail, "look": look})
    server.add_observer(server=observer(seen, "so1", set_var=True))
    server.add_interceptor(server=recorder(seen, "si"))
    server.add_observer(server=observer(seen, "so2"))
    caller = await make_kite("caller")
    caller.add_interceptor(client=recorder(seen, "ci"))
    caller.add_observer(client=observer(seen, "co"))
    async with caller.new_client(server.url) as client:
        assert await client.tell("square", 3) == 9
        with pytest.raises(GenericError, match="boom"):
            await client.tell("fail")
        with pytest.raises(MethodNotFoundError):
            await client.tell("nothing")
        assert await client.tell("look") == 1
    assert _CURRENT.get() is None
    assert handler_saw == ["so1"]  # a context variable set by a server start
    # server: observers outside the interceptors; client: inside them
    assert seen[:8] == [
        ("ci", "in", "square"),
        ("co", "start", "square"),
        ("so1", "start", "square"),
        ("so2", "start", "square"),
        ("si", "in", "square"),
        ("si", "out", "square", ""),
        ("so2", "end", "square", ""),
        ("so1", "end", "square", ""),
    ]
    assert seen[8:10] == [("co", "end", "square", ""), ("ci", "out", "square", "")]
    assert ("so1", "end", "fail", "genericError") in seen
    assert ("co", "end", "fail", "genericError") in seen
    assert ("co", "end", "nothing", "methodNotFound") in seen
    assert not [s for s in seen if s[0].startswith("s") and s[2] == "nothing"]


async def test_observers_alone_on_the_client_and_a_failing_start(make_kite: Any) -> None:
    seen: list[Any] = []
    server = await make_kite("server", methods={"square": square})
    caller = await make_kite("caller")
    caller.add_observer(client=observer(seen, "c1"))

    def broken(call: Any) -> None:
        raise RuntimeError("observer bug")

    async with caller.new_client(server.url) as client:
        assert await client.tell("square", 4) == 16
        caller.add_observer(client=(broken, lambda call, state, error: None))
        with pytest.raises(RuntimeError, match="observer bug"):
            await client.tell("square", 5)
    assert seen == [
        ("c1", "start", "square"),
        ("c1", "end", "square", ""),
        ("c1", "start", "square"),
        ("c1", "end", "square", "genericError"),  # the started one still ends
    ]


@pytest.mark.parametrize(
    ("install", "expected"),
    [
        (
            lambda kite, seen: kite.add_interceptor(client=recorder(seen, "c")),
            [("c", "in", "picky"), ("c", "out", "picky", "")],
        ),
        (
            lambda kite, seen: kite.add_observer(client=observer(seen, "c")),
            [("c", "start", "picky"), ("c", "end", "picky", "")],
        ),
    ],
    ids=["intercepted", "observed"],
)
async def test_a_call_retried_after_token_renewal_is_one_call_of_the_seam(
    make_kite: Any, install: Any, expected: list[Any]
) -> None:
    """A call refused for an expired token, renewed and sent again, is one call to a client
    interceptor and to a client observer."""
    refusals = [AuthenticationError("token is expired")]

    async def picky(r: Any) -> str:
        if refusals:
            raise refusals.pop()
        return "ok"

    server = await make_kite("server", methods={"picky": picky})
    caller = await make_kite("caller")
    seen: list[Any] = []
    install(caller, seen)
    renewals: list[Any] = []
    async with caller.new_client(server.url) as client:
        client.on_token_expire(renewals.append)
        assert await client.tell("picky") == "ok"
    assert len(renewals) == 1
    assert seen == expected


def test_server_call_metadata_is_incoming_metadata() -> None:
    """``ServerCall.metadata`` reads as incoming_metadata does, once."""
    request: Any = SimpleNamespace(method="m")
    for options in (
        {},
        {"metadata": None},
        {"metadata": "traceparent"},
        {"metadata": {}},
        {"metadata": {"traceparent": "00-x", "tracestate": "a=b"}},
        {"metadata": {"a": "1", "b": 2, "c": None}},
    ):
        call = ServerCall(None, request, None, options)  # type: ignore[arg-type]
        assert call.metadata == incoming_metadata(options)
        assert call.metadata is call.metadata  # read once


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("failing", ["start", "end"])
async def test_two_observers_when_the_second_one_raises(
    make_kite: Any, side: str, failing: str
) -> None:
    """Two observers of one side (metrics and tracing): the second one's failing
    ``start`` or ``end`` fails the call, and the first one's ``end`` still runs, with the
    error when ``start`` failed."""
    seen: list[Any] = []
    server = await make_kite("server", methods={"square": square})
    caller = await make_kite("caller")
    kite = server if side == "server" else caller

    def start(call: Any) -> str:
        if failing == "start" and call.method == "square":
            raise RuntimeError("observer bug")
        return "s2"

    def end(call: Any, state: Any, error: BaseException | None) -> None:
        seen.append(("o2", "end", call.method, error_type(error)))
        if failing == "end" and call.method == "square":
            raise RuntimeError("observer bug")

    kite.add_observer(**{side: observer(seen, "o1")})
    kite.add_observer(**{side: (start, end)})
    async with caller.new_client(server.url) as client:
        error = GenericError if side == "server" else RuntimeError
        with pytest.raises(error, match="observer bug"):
            await client.tell("square", 4)
    if failing == "start":
        assert seen == [("o1", "start", "square"), ("o1", "end", "square", "genericError")]
    else:
        assert seen == [
            ("o1", "start", "square"),
            ("o2", "end", "square", ""),
            ("o1", "end", "square", ""),
        ]
