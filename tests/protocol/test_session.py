"""The sans-IO dnode session: numbering, the callback table, pending calls, callback order.

No event loop and no socket: texts go in, events come out (the peer's messages are built with
the dnode encoder, as a peer would send them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kitecore.protocol import dnode
from kitecore.protocol.envelope import request_arguments, response_arguments
from kitecore.protocol.errors import (
    ArgumentError,
    CallbackLimitError,
    GenericError,
    InvalidResponseError,
    MethodNotFoundError,
    SendError,
)
from kitecore.protocol.session import (
    CallbackInvoked,
    CallReceived,
    CallRejected,
    MessageDropped,
    ResponseReceived,
    Session,
)

BIG = "9" * 5000  # an integer literal longer than int() converts (4,300 digits by default)


class Proxy:
    """Stands for a function the peer sent: records what it was called with."""

    def __init__(self, callback_id: int) -> None:
        self.id = callback_id
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Proxy) and other.id == self.id

    __hash__ = None  # type: ignore[assignment]


def new_session(**kwargs: Any) -> Session:
    return Session(Proxy, **kwargs)


def reply(callback_id: int, result: Any = None, error: Any = None) -> str:
    """The peer answering our call whose response callback is ``callback_id``."""
    return dnode.encode_call(callback_id, [{"error": error, "result": result}], {})


def invoke(callback_id: int, *args: Any) -> str:
    """The peer invoking our callback ``callback_id``."""
    return dnode.encode_call(callback_id, list(args), {})


def request(method: str, *with_args: Any, response_id: int | None = 7) -> str:
    """A Kite request from the peer, its response callback numbered ``response_id``."""
    callbacks: dict[str, list[int | str]] = {}
    if response_id is not None:
        callbacks[str(response_id)] = [0, "responseCallback"]
    arguments = request_arguments({}, None, list(with_args), "[Function]")
    return dnode.encode_call(method, arguments, callbacks)


def call(session: Session, method: str = "square", pending: Any = "pending", **kw: Any) -> int:
    """What a caller does: take an id, send the request, then expect the reply."""
    callback_id = session.new_id()
    session.expect_response(callback_id, pending, **kw)
    return callback_id


def drain(session: Session) -> list[Any]:
    events = []
    while (event := session.next_ordered()) is not None:
        events.append(event)
    return events


# ------------------------------------------------------------------------ numbering


def test_ids_count_from_zero_shared_by_functions_and_response_callbacks() -> None:
    session = new_session()
    assert session.register(print) == 0
    assert session.new_id() == 1
    scrubbed, callbacks = session.scrub([1, {"f": len, "g": [repr]}])
    assert scrubbed == [1, {"f": "[Function]", "g": ["[Function]"]}]
    assert callbacks == {"2": [1, "f"], "3": [1, "g", 0]}
    assert session.register(print) == 4


def test_ids_are_never_reused() -> None:
    session = new_session()
    first = call(session)
    session.forget(first)
    function_id = session.register(print)
    session.forget(function_id)
    assert session.callback_count == 0
    assert session.register(print) == 2


def test_encode_call_scrubs_and_registers() -> None:
    session = new_session()
    text = session.encode_call(3, [{"error": None, "result": [len]}])
    assert json.loads(text) == {
        "method": 3,
        "arguments": [{"error": None, "result": ["[Function]"]}],
        "callbacks": {"0": [0, "result", 0]},
    }
    assert session.function_count == 1


def test_a_cyclic_argument_registers_nothing() -> None:
    session = new_session()
    cycle: list[Any] = [print]
    cycle.append(cycle)
    with pytest.raises(SendError):
        session.scrub(cycle)
    assert session.function_count == 0


# ------------------------------------------------------------------------ incoming calls


def test_a_request_becomes_call_received_with_proxies_in_place() -> None:
    session = new_session()
    event = session.receive(request("square", 4))
    assert isinstance(event, CallReceived)
    assert event.method == "square"
    options = event.arguments[0]
    assert options["withArgs"] == [4]
    assert options["responseCallback"] == Proxy(7)
    # calls do not take part in callback order
    assert session.next_ordered() is None


def test_a_function_inside_with_args_becomes_a_proxy() -> None:
    session = new_session()
    arguments = request_arguments({}, None, [5, "[Function]"], "[Function]")
    text = dnode.encode_call(
        "countdown", arguments, {"0": [0, "responseCallback"], "1": ["0", "withArgs", "1"]}
    )
    event = session.receive(text)
    assert isinstance(event, CallReceived)
    assert event.arguments[0]["withArgs"] == [5, Proxy(1)]


# ------------------------------------------------------------------------ replies


def test_a_reply_resolves_its_pending_call_and_leaves_the_table() -> None:
    session = new_session()
    callback_id = call(session, pending="p")
    assert session.callback_count == 1 and session.pending_count == 1
    event = session.receive(reply(callback_id, 16))
    assert event == ResponseReceived(callback_id, "p", 16, None)
    assert session.next_ordered() is None
    assert session.callback_count == 0 and session.pending_count == 0


@pytest.mark.parametrize(
    ("arguments", "result", "error"),
    [
        ([{"error": None, "result": 16}], 16, None),
        ([None], None, None),  # kite.js for a handler returning undefined (issue 10.5)
        ([None, "pong"], "pong", None),
        (
            [{"error": {"type": "methodNotFound", "message": "Method not found: x"}}],
            None,
            MethodNotFoundError,
        ),
        (["boom", None], None, GenericError),
        ([], None, InvalidResponseError),
        ([5], None, InvalidResponseError),
    ],
)
def test_reply_shapes(arguments: list[Any], result: Any, error: type | None) -> None:
    session = new_session()
    callback_id = call(session)
    event = session.receive(dnode.encode_call(callback_id, arguments, {}))
    assert isinstance(event, ResponseReceived)
    assert event.result == result
    if error is None:
        assert event.error is None
    else:
        assert type(event.error) is error


def test_a_second_reply_to_the_same_call_is_dropped() -> None:
    session = new_session()
    callback_id = call(session)
    assert isinstance(session.receive(reply(callback_id, 1)), ResponseReceived)
    assert session.next_ordered() is None
    event = session.receive(reply(callback_id, 2))
    assert isinstance(event, MessageDropped)
    assert not event.malformed
    assert "unknown callback" in event.reason


def test_a_reply_after_the_caller_gave_up_is_dropped() -> None:
    session = new_session()
    callback_id = call(session)
    session.forget(callback_id)  # timeout
    assert session.callback_count == 0
    assert isinstance(session.receive(reply(callback_id, 1)), MessageDropped)


@pytest.mark.parametrize("callback_id", [0, 99, 2**70])
def test_unknown_callback_ids_are_dropped_not_malformed(callback_id: int) -> None:
    session = new_session()
    event = session.receive(invoke(callback_id, "x"))
    assert isinstance(event, MessageDropped)
    assert not event.malformed


# ------------------------------------------------------------------------ callbacks and order


def test_a_callback_stays_after_it_ran() -> None:
    session = new_session()
    callback_id = session.register(print)
    for n in range(3):
        event = session.receive(invoke(callback_id, n))
        assert event == CallbackInvoked(callback_id, print, [n])
        assert session.next_ordered() is None
    assert session.function_count == 1


def test_a_reply_waits_for_the_callbacks_the_peer_invoked_before_it() -> None:
    session = new_session()
    tick = session.register(print)
    callback_id = call(session, pending="p")
    first = session.receive(invoke(tick, 1))
    assert first == CallbackInvoked(tick, print, [1])
    # while the driver handles the first callback, the rest waits in the session, in order
    assert session.receive(invoke(tick, 2)) is None
    assert session.receive(invoke(tick, 3)) is None
    assert session.receive(reply(callback_id, "done")) is None
    assert session.receive(invoke(tick, 4)) is None
    assert session.ordered_backlog == 4
    assert drain(session) == [
        CallbackInvoked(tick, print, [2]),
        CallbackInvoked(tick, print, [3]),
        ResponseReceived(callback_id, "p", "done", None),
        CallbackInvoked(tick, print, [4]),
    ]
    assert session.callback_count == 1  # the function; the reply left with its delivery


def test_after_the_queue_drains_events_come_straight_from_receive_again() -> None:
    session = new_session()
    tick = session.register(print)
    assert isinstance(session.receive(invoke(tick, 1)), CallbackInvoked)
    assert session.receive(invoke(tick, 2)) is None
    assert drain(session) == [CallbackInvoked(tick, print, [2])]
    assert session.receive(invoke(tick, 3)) == CallbackInvoked(tick, print, [3])


def test_a_reply_from_receive_needs_no_follow_up() -> None:
    session = new_session()
    tick = session.register(print)
    callback_id = call(session)
    assert isinstance(session.receive(reply(callback_id, 1)), ResponseReceived)
    assert session.receive(invoke(tick, 1)) == CallbackInvoked(tick, print, [1])


def test_method_calls_do_not_wait_for_callbacks() -> None:
    session = new_session()
    tick = session.register(print)
    assert isinstance(session.receive(invoke(tick, 1)), CallbackInvoked)
    assert isinstance(session.receive(request("square", 2)), CallReceived)


def test_a_reply_queued_and_then_given_up_is_skipped() -> None:
    session = new_session()
    tick = session.register(print)
    callback_id = call(session)
    session.receive(invoke(tick, 1))
    assert session.receive(reply(callback_id, 1)) is None
    session.forget(callback_id)  # the caller timed out while the reply waited
    assert session.receive(invoke(tick, 2)) is None
    assert drain(session) == [CallbackInvoked(tick, print, [2])]


def test_an_unordered_call_is_answered_while_a_callback_runs() -> None:
    # A call made by a running callback: its reply cannot wait for that callback.
    session = new_session()
    tick = session.register(print)
    ordered = call(session, pending="ordered")
    assert isinstance(session.receive(invoke(tick, 1)), CallbackInvoked)
    inner = call(session, pending="inner", ordered=False)
    assert session.receive(reply(ordered, "a")) is None
    event = session.receive(reply(inner, "b"))
    assert event == ResponseReceived(inner, "inner", "b", None)
    assert drain(session) == [ResponseReceived(ordered, "ordered", "a", None)]
    assert session.callback_count == 1


def test_an_unordered_call_with_nothing_running_is_an_ordinary_reply() -> None:
    session = new_session()
    callback_id = call(session, ordered=False)
    event = session.receive(reply(callback_id, 1))
    assert isinstance(event, ResponseReceived)
    assert session.ordered_backlog == 0


def test_countdown_order_when_the_driver_lags_behind_the_reader() -> None:
    session = new_session()
    tick = session.register(print)
    callback_id = call(session, pending="p")
    texts = [invoke(tick, n) for n in range(50)] + [reply(callback_id, "done")]
    events: list[Any] = []
    handling = False  # the driver is busy with an ordered event
    for index, text in enumerate(texts):
        event = session.receive(text)
        if event is not None:
            assert not handling
            events.append(event)
            handling = isinstance(event, CallbackInvoked)  # a reply needs no follow-up
        if handling and index % 3 == 0:  # now and then, the driver finishes one
            event = session.next_ordered()
            handling = event is not None
            if event is not None:
                events.append(event)
    events.extend(drain(session))
    assert [e.arguments[0] for e in events[:-1]] == list(range(50))
    assert events[-1] == ResponseReceived(callback_id, "p", "done", None)


# ------------------------------------------------------------------------ closing


def test_close_returns_the_pending_calls_and_empties_everything() -> None:
    session = new_session()
    tick = session.register(print)
    waiting = call(session, pending="waiting")
    queued = call(session, pending="queued")
    session.receive(invoke(tick, 1))
    assert session.receive(reply(queued, 1)) is None
    assert sorted(session.close()) == ["queued", "waiting"]
    assert session.callback_count == 0
    assert session.ordered_backlog == 0
    assert session.next_ordered() is None
    assert session.receive(reply(waiting, 1)) is None
    with pytest.raises(SendError):
        session.expect_response(session.new_id(), "late")


# ------------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1]",
        '{"method": null}',
        '{"method": "x", "arguments": 5}',
        "[" * 100_000,
        # an integer too long, then something the lenient second parse must refuse as well
        f'{{"method": {BIG}}} trailing',
        f'{{"method": "x", "arguments": [{BIG}, {"[" * 100_000}',
        f"[{BIG}]",
    ],
)
def test_malformed_messages_are_dropped(text: str) -> None:
    event = new_session().receive(text)
    assert isinstance(event, MessageDropped)
    assert event.malformed


def test_a_message_over_the_size_limit_is_dropped() -> None:
    event = new_session(max_message_size=10).receive(request("square", 4))
    assert isinstance(event, MessageDropped)
    assert "limit 10" in event.reason


def test_a_request_with_a_huge_integer_is_answered_with_an_argument_error() -> None:
    session = new_session()
    text = request("square", 0).replace('"withArgs":[0]', f'"withArgs":[{BIG}]')
    event = session.receive(text)
    assert isinstance(event, CallRejected)
    assert event.respond == Proxy(7)
    assert isinstance(event.error, ArgumentError)
    assert "4300 digits" in event.error.message
    assert response_arguments(None, event.error)[0]["error"]["type"] == "argumentError"


def test_a_request_with_a_huge_integer_and_no_response_callback_is_dropped() -> None:
    session = new_session()
    text = request("square", 0, response_id=None).replace('"withArgs":[0]', f'"withArgs":[{BIG}]')
    event = session.receive(text)
    assert isinstance(event, MessageDropped)
    assert event.malformed


def test_a_reply_with_a_huge_integer_fails_its_call() -> None:
    session = new_session()
    callback_id = call(session, pending="p")
    event = session.receive(reply(callback_id, 0).replace('"result":0', f'"result":{BIG}'))
    assert isinstance(event, ResponseReceived)
    assert isinstance(event.error, InvalidResponseError)
    assert session.callback_count == 0


def test_a_callback_invocation_with_a_huge_integer_is_dropped() -> None:
    session = new_session()
    tick = session.register(print)
    event = session.receive(invoke(tick, 0).replace("[0]", f"[{BIG}]"))
    assert isinstance(event, MessageDropped)
    assert event.malformed
    assert session.next_ordered() is None


def test_a_huge_integer_as_method_is_dropped() -> None:
    event = new_session().receive(f'{{"method":{BIG},"arguments":[],"callbacks":{{}}}}')
    assert isinstance(event, MessageDropped)


def test_a_huge_string_path_element_leads_nowhere() -> None:
    session = new_session()
    text = request("square", 4).replace(
        '"callbacks":{', f'"callbacks":{{"8":[0,"withArgs","{"1" * 5000}"],'
    )
    event = session.receive(text)
    assert isinstance(event, CallReceived)
    assert event.arguments[0]["withArgs"] == [4]
    assert event.arguments[0]["responseCallback"] == Proxy(7)


def test_a_huge_callback_id_in_the_callbacks_map_is_skipped() -> None:
    session = new_session()
    text = request("square", 4).replace('"callbacks":{', f'"callbacks":{{"{BIG}":[0,"withArgs",0],')
    event = session.receive(text)
    assert isinstance(event, CallReceived)
    assert event.arguments[0]["withArgs"] == [4]


# ------------------------------------------------------------------------ the callback limit


def test_scrub_past_the_limit_registers_none_of_the_message() -> None:
    session = new_session(max_callbacks=3)
    session.scrub([print, print])
    with pytest.raises(CallbackLimitError, match="limit 3"):
        session.scrub([len, len])
    assert session.function_count == 2
    session.scrub([len])
    assert session.function_count == 3
    with pytest.raises(CallbackLimitError):
        session.register(len)
    assert CallbackLimitError("x").to_wire()["type"] == "callbackLimitError"


def test_pending_calls_do_not_count_against_the_limit() -> None:
    session = new_session(max_callbacks=1)
    for _ in range(10):
        call(session)
    session.register(print)
    assert session.callback_count == 11


def test_forgetting_a_function_makes_room() -> None:
    session = new_session(max_callbacks=1)
    function_id = session.register(print)
    session.forget(function_id)
    session.register(print)


# ------------------------------------------------------------------------ two sessions linked


def test_two_sessions_talk_through_a_fake_link() -> None:
    """A call with a callback, answered after the callback ran: both ends sans-IO."""
    wire_to_server: list[str] = []
    wire_to_client: list[str] = []
    server = Session(
        lambda cid: lambda *args: wire_to_client.append(server.encode_call(cid, list(args)))
    )
    client = Session(Proxy)
    seen: list[Any] = []

    scrubbed, callbacks = client.scrub([3, seen.append])
    callbacks = {key: [0, "withArgs", *path] for key, path in callbacks.items()}
    response_id = client.new_id()
    callbacks[str(response_id)] = [0, "responseCallback"]
    arguments = request_arguments({}, None, scrubbed, "[Function]")
    wire_to_server.append(dnode.encode_call("countdown", arguments, callbacks))
    client.expect_response(response_id, "countdown")

    event = server.receive(wire_to_server.pop())
    assert isinstance(event, CallReceived)
    n, tick = event.arguments[0]["withArgs"]
    for i in range(n):
        tick(i)
    event.arguments[0]["responseCallback"](*response_arguments("done"))

    results = []
    for text in wire_to_client:
        client_event = client.receive(text)
        while client_event is not None:
            if isinstance(client_event, CallbackInvoked):
                client_event.function(*client_event.arguments)
            else:
                results.append((client_event.pending, client_event.result))
            client_event = client.next_ordered()
    assert seen == [0, 1, 2]
    assert results == [("countdown", "done")]
    assert client.callback_count == 1  # the tick function stays for the peer
