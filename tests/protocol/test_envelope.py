"""Kite's request envelope and responses, for Go-style and kite.js-style peers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kitecore.protocol import (
    ArgumentError,
    Authentication,
    AuthenticationError,
    CallOptions,
    CallOptionsError,
    GenericError,
    InvalidResponseError,
    KiteError,
    KiteIdentity,
    MethodNotFoundError,
    decode,
    encode_call,
    parse_call_options,
    parse_response,
    request_arguments,
    response_arguments,
    scrub,
    unscrub,
)

from .samples import GO_REQUEST, KITEJS_REQUEST, Recorder

GO_KITE = {
    "name": "exp2",
    "username": "alice",
    "id": "0b6f9e1c",
    "environment": "production",
    "region": "eu",
    "version": "1.0.0",
    "hostname": "host1",
}


def respond(value: Any) -> None:
    """Stands in for a responseCallback proxy."""


def options(**fields: Any) -> list[Any]:
    return [{"responseCallback": respond, **fields}]


# -------------------------------------------------------------------------------- requests


def test_go_request_parses() -> None:
    msg = decode(GO_REQUEST)
    unscrub(msg.arguments, msg.callbacks, lambda cid: respond)
    opts = parse_call_options(msg.arguments)
    assert opts == CallOptions(
        kite=KiteIdentity.from_wire(GO_KITE),
        authentication=Authentication("token", "eyJhbGciOiJSUzI1NiIs"),
        with_args=[4],
        response_callback=respond,
    )


def test_call_options_are_frozen() -> None:
    opts = parse_call_options(options(withArgs=[1]))
    assert opts == CallOptions(None, None, [1], respond)
    with pytest.raises(AttributeError):
        opts.with_args = []  # type: ignore[misc]


def test_kitejs_request_parses() -> None:
    """§14: string path "0", links, withArgs scalar, authentication absent."""
    msg = decode(KITEJS_REQUEST)
    made: list[int] = []
    unscrub(msg.arguments, msg.callbacks, lambda cid: made.append(cid) or respond)
    opts = parse_call_options(msg.arguments)
    assert made == [1]
    assert opts.response_callback is respond
    assert opts.with_args == [4]
    assert opts.authentication is None
    assert opts.kite is not None and opts.kite.name == "js"


def test_request_arguments_encode_like_go() -> None:
    args = request_arguments(
        GO_KITE, {"type": "token", "key": "eyJhbGciOiJSUzI1NiIs"}, [4], respond
    )
    assert list(args[0]) == ["kite", "authentication", "responseCallback", "withArgs"]
    scrubbed, callbacks = scrub(args, Recorder())
    assert encode_call("square", scrubbed, callbacks) == GO_REQUEST


def test_request_arguments_without_auth_sends_null() -> None:
    args = request_arguments(GO_KITE, None, [], respond)
    scrubbed, callbacks = scrub(args, Recorder())
    wire = json.loads(encode_call("kite.ping", scrubbed, callbacks))
    assert "authentication" in wire["arguments"][0]
    assert wire["arguments"][0]["authentication"] is None
    assert wire["arguments"][0]["withArgs"] == []
    assert wire["callbacks"] == {"0": [0, "responseCallback"]}


def test_request_user_callbacks_get_with_args_paths() -> None:
    def on_event() -> None:
        pass

    args = request_arguments(GO_KITE, None, [1, on_event], respond)
    _, callbacks = scrub(args, Recorder())
    assert callbacks == {"0": [0, "responseCallback"], "1": [0, "withArgs", 1]}


@pytest.mark.parametrize(
    ("with_args", "expected"),
    [
        (None, []),
        ("absent", []),
        ([], []),
        ([1, "a"], [1, "a"]),
        (4, [4]),
        ("text", ["text"]),
        ({"a": 1}, [{"a": 1}]),
        (False, [False]),
    ],
)
def test_with_args_forms(with_args: Any, expected: list[Any]) -> None:
    fields = {} if with_args == "absent" else {"withArgs": with_args}
    assert parse_call_options(options(**fields)).with_args == expected


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("absent", None),
        (None, None),
        ({"type": "kiteKey", "key": "k"}, Authentication("kiteKey", "k")),
        ({"type": "token"}, Authentication("token", "")),
    ],
)
def test_authentication_forms(auth: Any, expected: Authentication | None) -> None:
    fields = {} if auth == "absent" else {"authentication": auth}
    assert parse_call_options(options(**fields)).authentication == expected


@pytest.mark.parametrize("auth", ["token", 5, [1], {"type": 1, "key": "k"}, {"key": ["x"]}])
def test_bad_authentication_raises_with_callback(auth: Any) -> None:
    with pytest.raises(CallOptionsError) as info:
        parse_call_options(options(authentication=auth))
    assert info.value.response_callback is respond
    assert info.value.type == "argumentError"
    assert isinstance(info.value, ArgumentError)


def test_authentication_wire_round_trip() -> None:
    auth = Authentication("token", "abc")
    assert auth.to_wire() == {"type": "token", "key": "abc"}
    assert Authentication.from_wire(auth.to_wire()) == auth
    assert Authentication.from_wire(None) is None


@pytest.mark.parametrize("kite", ["absent", None])
def test_kite_absent_or_null(kite: Any) -> None:
    fields = {} if kite == "absent" else {"kite": kite}
    assert parse_call_options(options(**fields)).kite is None


@pytest.mark.parametrize("kite", ["alice", 3, {"name": 7}])
def test_bad_kite_raises_with_callback(kite: Any) -> None:
    with pytest.raises(CallOptionsError) as info:
        parse_call_options(options(kite=kite))
    assert info.value.response_callback is respond


@pytest.mark.parametrize("callback", ["absent", None, "[Function]", 5])
def test_response_callback_missing_or_not_callable(callback: Any) -> None:
    fields = {} if callback == "absent" else {"responseCallback": callback}
    assert parse_call_options([fields]).response_callback is None


@pytest.mark.parametrize(
    ("arguments", "callback"),
    [
        ([], None),
        ([{"responseCallback": respond}, 2], respond),
        ([{"withArgs": []}, {}], None),
        (["x", {"responseCallback": respond}], None),
    ],
)
def test_wrong_array_length(arguments: list[Any], callback: Any) -> None:
    with pytest.raises(CallOptionsError, match="Invalid array length") as info:
        parse_call_options(arguments)
    assert info.value.response_callback is callback


@pytest.mark.parametrize("arguments", [[4], ["x"], [None], [[{}]]])
def test_options_not_an_object(arguments: list[Any]) -> None:
    with pytest.raises(CallOptionsError, match="not an object") as info:
        parse_call_options(arguments)
    assert info.value.response_callback is None


# ------------------------------------------------------------------------------- responses


def test_response_arguments_success_encodes_like_go() -> None:
    args = response_arguments(16)
    assert encode_call(0, args, {}) == (
        '{"method":0,"arguments":[{"error":null,"result":16}],"callbacks":{}}'
    )


def test_response_arguments_error_encodes_like_go() -> None:
    err = GenericError("negative argument", id="5f0c2a9d1e3b4a77")
    args = response_arguments(error=err)
    assert json.dumps(args[0], separators=(",", ":")) == (
        '{"error":{"type":"genericError","message":"negative argument","code":"",'
        '"id":"5f0c2a9d1e3b4a77"},"result":null}'
    )


@pytest.mark.parametrize(
    ("arguments", "result"),
    [
        ([{"error": None, "result": 16}], 16),
        ([{"result": "pong"}], "pong"),
        ([{"error": None}], None),
        ([{"error": None, "result": None}], None),
        ([{"error": None, "result": [1, {"a": 2}]}], [1, {"a": 2}]),
        ([None, "pong"], "pong"),
        ([None, None], None),
        ([None, 1, 2], 1),
        # kite.js answers (null) for a handler that returned undefined (issue 10.5)
        ([None], None),
    ],
)
def test_parse_response_results(arguments: list[Any], result: Any) -> None:
    assert parse_response(arguments) == result


@pytest.mark.parametrize(
    ("arguments", "cls", "message"),
    [
        (
            [{"error": {"type": "methodNotFound", "message": "Method not found: foo"}}],
            MethodNotFoundError,
            "Method not found: foo",
        ),
        (
            [
                {
                    "error": {
                        "type": "authenticationError",
                        "message": "token: token is expired",
                        "code": "",
                        "id": "ab",
                    },
                    "result": None,
                }
            ],
            AuthenticationError,
            "token: token is expired",
        ),
        ([{"error": "plain text", "result": 1}], GenericError, "plain text"),
        ([{"error": {}, "result": 1}], GenericError, "without a message"),
        ([{"type": "genericError", "message": "bad"}, None], GenericError, "bad"),
        (["string error", None], GenericError, "string error"),
        ([{"message": "x is undefined", "name": "TypeError"}, None], GenericError, "TypeError"),
        ([{"type": "custom", "message": "m"}, None], KiteError, "m"),
    ],
)
def test_parse_response_errors(arguments: list[Any], cls: type[KiteError], message: str) -> None:
    with pytest.raises(KiteError) as info:
        parse_response(arguments)
    assert type(info.value) is cls
    assert message in info.value.message


@pytest.mark.parametrize(
    "arguments",
    [[], [5], ["x"], [{"foo": 1}], [{}], [[{"error": None}]]],
)
def test_parse_response_invalid(arguments: list[Any]) -> None:
    with pytest.raises(InvalidResponseError) as info:
        parse_response(arguments)
    assert info.value.message == "Server has sent invalid response arguments"
    assert info.value.type == "invalidResponse"


@pytest.mark.parametrize(
    "err",
    [AuthenticationError("token: token is expired", id="1"), KiteError("m", type="custom")],
)
def test_response_round_trip_through_the_wire(err: KiteError) -> None:
    msg = decode(encode_call(3, response_arguments(error=err), {}))
    with pytest.raises(KiteError) as info:
        parse_response(msg.arguments)
    assert type(info.value) is type(err)
    assert info.value.to_wire() == err.to_wire()


# ------------------------------------------------------------------------- fake link end to end


class Peer:
    """One end of a connection, driven by hand: the protocol functions and a callback table."""

    def __init__(self, methods: dict[str, Any]) -> None:
        self.methods = methods
        self.table = Recorder()
        self.outbox: list[str] = []

    def call(self, method: str, *args: Any, done: Any) -> None:
        arguments = request_arguments(GO_KITE, None, list(args), done)
        scrubbed, callbacks = scrub(arguments, self.table)
        self.outbox.append(encode_call(method, scrubbed, callbacks))

    def _proxy(self, cid: int) -> Any:
        def send(*args: Any) -> None:
            scrubbed, callbacks = scrub(list(args), self.table)
            self.outbox.append(encode_call(cid, scrubbed, callbacks))

        return send

    def receive(self, text: str) -> None:
        msg = decode(text)
        unscrub(msg.arguments, msg.callbacks, self._proxy)
        if isinstance(msg.method, int):
            self.table.functions[msg.method](*msg.arguments)
            return
        try:
            opts = parse_call_options(msg.arguments)
        except CallOptionsError as exc:
            if exc.response_callback is not None:
                exc.response_callback(*response_arguments(error=exc))
            return
        handler = self.methods.get(msg.method)
        if handler is None:
            error = MethodNotFoundError(f"Method not found: {msg.method}")
            opts.response_callback(*response_arguments(error=error))
            return
        opts.response_callback(*response_arguments(handler(*opts.with_args)))


def pump(a: Peer, b: Peer) -> None:
    while a.outbox or b.outbox:
        while a.outbox:
            b.receive(a.outbox.pop(0))
        while b.outbox:
            a.receive(b.outbox.pop(0))


def test_fake_link_call_and_errors() -> None:
    events: list[str] = []

    def square(n: int, notify: Any) -> int:
        notify(f"squaring {n}")
        return n * n

    server = Peer({"square": square})
    client = Peer({})
    results: list[Any] = []

    def done(*args: Any) -> None:
        try:
            results.append(parse_response(list(args)))
        except KiteError as exc:
            results.append(exc)

    client.call("square", 4, events.append, done=done)
    client.call("cube", 2, done=done)
    pump(client, server)

    assert events == ["squaring 4"]
    assert results[0] == 16
    assert isinstance(results[1], MethodNotFoundError)
    assert str(results[1]) == "methodNotFound: Method not found: cube"
