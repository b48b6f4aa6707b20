"""dnode message layer: decode, encode, scrub, unscrub."""

from __future__ import annotations

import copy
import functools
import json
import math
from typing import Any

import pytest

from kitecore.protocol import (
    FUNCTION_PLACEHOLDER,
    Message,
    ProtocolError,
    SendError,
    decode,
    dnode,
    encode,
    encode_call,
    scrub,
    unscrub,
)

from .samples import GO_PING, GO_REQUEST, GO_RESPONSE, KITEJS_REQUEST, Recorder, proxy

# ------------------------------------------------------------------------------- decode/encode


def test_decode_go_request() -> None:
    msg = decode(GO_REQUEST)
    assert msg.method == "square"
    assert msg.callbacks == {"0": [0, "responseCallback"]}
    assert msg.arguments[0]["withArgs"] == [4]
    assert msg.arguments[0]["responseCallback"] == FUNCTION_PLACEHOLDER


@pytest.mark.parametrize("text", [GO_REQUEST, GO_RESPONSE, GO_PING])
def test_go_messages_round_trip_byte_for_byte(text: str) -> None:
    assert encode(decode(text)) == text


def test_decode_go_response_method_is_int() -> None:
    msg = decode(GO_RESPONSE)
    assert msg == Message(0, [{"error": None, "result": 16}], {})
    assert type(msg.method) is int


def test_decode_kitejs_request_ignores_links_and_reencodes_in_go_order() -> None:
    msg = decode(KITEJS_REQUEST)
    assert msg.method == "square"
    assert msg.callbacks == {"1": ["0", "responseCallback"]}
    assert not hasattr(msg, "links")
    text = encode(msg)
    assert list(json.loads(text)) == ["method", "arguments", "callbacks"]
    assert '"links"' not in text


def test_encode_always_emits_three_keys_compact() -> None:
    assert encode(Message("kite.ping", [], {})) == (
        '{"method":"kite.ping","arguments":[],"callbacks":{}}'
    )
    assert encode_call(3, [1, "a"], {}) == '{"method":3,"arguments":[1,"a"],"callbacks":{}}'


def test_encode_keeps_non_ascii() -> None:
    text = encode_call("echo", ["héllo ☃"], {})
    assert "héllo ☃" in text
    assert decode(text).arguments == ["héllo ☃"]


def test_encode_tuples_as_arrays() -> None:
    assert encode_call("m", [(1, 2)], {}) == '{"method":"m","arguments":[[1,2]],"callbacks":{}}'


class Unserialisable:
    pass


def _cycle() -> list[Any]:
    a: list[Any] = []
    a.append(a)
    return a


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ([Unserialisable()], "Unserialisable"),
        ([{"x": {1, 2}}], "set"),
        ([math.nan], "arguments are not JSON-serialisable"),
        ([math.inf], "arguments are not JSON-serialisable"),
        ([{(1, 2): "tuple key"}], "keys must be"),
        (_cycle(), "cycle"),
    ],
)
def test_encode_unserialisable_raises_send_error(arguments: list[Any], fragment: str) -> None:
    with pytest.raises(SendError) as info:
        encode_call("m", arguments, {})
    assert fragment in info.value.message
    assert info.value.type == "sendError"
    with pytest.raises(SendError):
        encode(Message("m", arguments, {}))


def test_encoder_still_works_after_an_error() -> None:
    with pytest.raises(SendError):
        encode_call("m", _cycle(), {})
    assert encode_call("m", [[1]], {}) == '{"method":"m","arguments":[[1]],"callbacks":{}}'


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        ('{"method":2.0,"arguments":[]}', 2),
        ('{"method":1e2,"arguments":[]}', 100),
        ('{"method":0}', 0),
        ('{"method":"kite.ping"}', "kite.ping"),
        ('{"method":""}', ""),
    ],
)
def test_decode_method_forms(raw: str, method: str | int) -> None:
    msg = decode(raw)
    assert msg.method == method
    assert type(msg.method) is type(method)


@pytest.mark.parametrize(
    "raw",
    [
        '{"method":"m"}',
        '{"method":"m","arguments":null}',
        '{"method":"m","arguments":null,"callbacks":null}',
        '{"method":"m","arguments":[],"callbacks":{},"links":[]}',
    ],
)
def test_decode_missing_or_null_parts_are_empty(raw: str) -> None:
    assert decode(raw) == Message("m", [], {})


@pytest.mark.parametrize(
    "data",
    [
        '  {"method":"m","arguments":[1]}\n',
        b'{"method":"m","arguments":[1]}',
        bytearray(b'{"method":"m","arguments":[1]}'),
        memoryview(b'{"method":"m","arguments":[1]}'),
    ],
)
def test_decode_accepts_whitespace_and_bytes(data: Any) -> None:
    assert decode(data) == Message("m", [1], {})


def test_decode_utf8_bytes() -> None:
    assert decode('{"method":"m","arguments":["ü"]}'.encode()).arguments == ["ü"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("", "message is not valid JSON"),
        ('{"method":', "message is not valid JSON"),
        ('{"method":"m"} x', "message is not valid JSON"),
        ('{"method":"m"}{}', "message is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"method":"m","arguments":' + "[" * 100_000, "message is not valid JSON"),
        ("[]", "message is not a JSON object"),
        ("1", "message is not a JSON object"),
        ('"text"', "message is not a JSON object"),
        ("null", "message is not a JSON object"),
        (b"\xff\xfe{}", "message is not valid UTF-8"),
        (b'{"method":"\xc3"}', "message is not valid UTF-8"),
        ("{}", "method is not a string or an integer"),
        ('{"method":null}', "method is not a string or an integer"),
        ('{"method":true}', "method is not a string or an integer"),
        ('{"method":1.5}', "method is not a string or an integer"),
        ('{"method":[1]}', "method is not a string or an integer"),
        ('{"method":{"a":1}}', "method is not a string or an integer"),
        ('{"method":"m","arguments":{}}', "arguments is not an array"),
        ('{"method":"m","arguments":"x"}', "arguments is not an array"),
        ('{"method":"m","arguments":4}', "arguments is not an array"),
        ('{"method":"m","callbacks":[]}', "callbacks is not an object"),
        ('{"method":"m","callbacks":"x"}', "callbacks is not an object"),
        ('{"method":"m","callbacks":{"a":[0]}}', "callback id"),
        ('{"method":"m","callbacks":{"-1":[0]}}', "callback id"),
        ('{"method":"m","callbacks":{"1.5":[0]}}', "callback id"),
        ('{"method":"m","callbacks":{"":[0]}}', "callback id"),
        ('{"method":"m","callbacks":{"0":"x"}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":{"a":1}}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":null}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":[true]}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":[1.5]}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":[null]}}', "callback path for id 0 is invalid"),
        ('{"method":"m","callbacks":{"0":[[0]]}}', "callback path for id 0 is invalid"),
    ],
)
def test_decode_malformed_raises_protocol_error(data: str | bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert fragment in info.value.message
    assert info.value.type == "protocolError"


def test_decode_accepts_mixed_path_elements() -> None:
    msg = decode('{"method":"m","arguments":[],"callbacks":{"12":[0,"a","1"],"3":[]}}')
    assert msg.callbacks == {"12": [0, "a", "1"], "3": []}


@pytest.mark.parametrize("msg", [Message("m", [], {}), decode('{"method":"m"}')])
def test_message_is_frozen(msg: Message) -> None:
    assert msg == Message("m", [], {})
    assert repr(msg) == "Message(method='m', arguments=[], callbacks={})"
    with pytest.raises(AttributeError):
        msg.method = "n"  # type: ignore[misc]


# ------------------------------------------------------------------------------------- scrub


def test_scrub_without_functions_returns_the_same_object() -> None:
    args = [{"kite": {"name": "x"}, "withArgs": [1, 2.5, None, True, "s", [(), {}]]}]
    calls: list[Any] = []
    scrubbed, callbacks = scrub(args, calls.append)  # type: ignore[arg-type]
    assert scrubbed is args
    assert callbacks == {}
    assert calls == []


def test_scrub_empty() -> None:
    args: list[Any] = []
    assert scrub(args, Recorder()) == ([], {})
    assert scrub(args, Recorder())[0] is args


def f1() -> None:
    pass


def f2() -> None:
    pass


def test_scrub_request_envelope_paths_and_ids_in_walk_order() -> None:
    args = [{"kite": {"name": "x"}, "responseCallback": f1, "withArgs": [3, f2, {"cb": [f1]}]}]
    original = copy.deepcopy(args)
    rec = Recorder(start=7)
    scrubbed, callbacks = scrub(args, rec)
    assert callbacks == {
        "7": [0, "responseCallback"],
        "8": [0, "withArgs", 1],
        "9": [0, "withArgs", 2, "cb", 0],
    }
    assert rec.functions == {7: f1, 8: f2, 9: f1}
    assert scrubbed == [
        {
            "kite": {"name": "x"},
            "responseCallback": "[Function]",
            "withArgs": [3, "[Function]", {"cb": ["[Function]"]}],
        }
    ]
    # The caller's structure is untouched; untouched subtrees are shared, not copied.
    assert args == original
    assert scrubbed[0]["kite"] is args[0]["kite"]


def test_scrub_top_level_and_tuples() -> None:
    scrubbed, callbacks = scrub((f1, (1, f2)), Recorder())  # type: ignore[arg-type]
    assert scrubbed == ["[Function]", [1, "[Function]"]]
    assert callbacks == {"0": [0], "1": [1, 1]}


class Callable_:
    def __call__(self) -> int:
        return 1

    def method(self) -> None:
        pass


@pytest.mark.parametrize(
    "fn",
    [
        f1,
        lambda: None,
        Callable_(),
        Callable_().method,
        len,
        functools.partial(f1),
    ],
)
def test_scrub_replaces_every_kind_of_callable(fn: Any) -> None:
    rec = Recorder()
    scrubbed, callbacks = scrub([{"x": fn}], rec)
    assert scrubbed == [{"x": "[Function]"}]
    assert callbacks == {"0": [0, "x"]}
    assert rec.functions[0] is fn


@pytest.mark.parametrize("value", [int, Callable_, Unserialisable, "s", 1, 2.0, None, b"x"])
def test_scrub_leaves_classes_and_plain_values(value: Any) -> None:
    args = [value, {"v": value}]
    scrubbed, callbacks = scrub(args, Recorder())
    assert scrubbed is args
    assert callbacks == {}


def test_scrub_non_string_dict_keys_use_json_key_text() -> None:
    scrubbed, callbacks = scrub([{1: f1, None: f2, 2.5: f1}], Recorder())
    assert callbacks == {"0": [0, "1"], "1": [0, "null"], "2": [0, "2.5"]}
    text = encode_call("m", scrubbed, callbacks)
    msg = decode(text)
    unscrub(msg.arguments, msg.callbacks, proxy)
    assert msg.arguments == [{"1": ("proxy", 0), "null": ("proxy", 1), "2.5": ("proxy", 2)}]


def test_scrub_cycle_raises_send_error() -> None:
    with pytest.raises(SendError):
        scrub(_cycle(), Recorder())


# ----------------------------------------------------------------------------------- unscrub


def test_unscrub_go_request() -> None:
    msg = decode(GO_REQUEST)
    result = unscrub(msg.arguments, msg.callbacks, proxy)
    assert result is msg.arguments
    assert result[0]["responseCallback"] == ("proxy", 0)


def test_unscrub_kitejs_string_index() -> None:
    msg = decode(KITEJS_REQUEST)
    unscrub(msg.arguments, msg.callbacks, proxy)
    assert msg.arguments[0]["responseCallback"] == ("proxy", 1)


@pytest.mark.parametrize(
    ("arguments", "callbacks"),
    [
        ([{"responseCallback": "[Function]"}], {"7": [0, "responseCallback"]}),
        ([{"responseCallback": "[Function]"}], {"x7": [0, "responseCallback"]}),
        ([{"responseCallback": "[Function]"}], {" 7": [0, "responseCallback"]}),
        ([{"other": "[Function]"}], {"7": [0, "responseCallback"]}),
        (["[Function]"], {"7": [0, "responseCallback"]}),
        ([], {"7": [0, "responseCallback"]}),
        ([{"responseCallback": "[Function]"}], {"7": [0.0, "responseCallback"]}),
        ([{"responseCallback": "[Function]"}], {"7": [False, "responseCallback"]}),
        ([{"responseCallback": "[Function]"}], {"7": ["0", "responseCallback"]}),
    ],
)
def test_unscrub_one_response_callback_as_the_general_walk_does(
    arguments: list[Any], callbacks: dict[str, Any]
) -> None:
    # a second callback that leads nowhere takes the general walk; both must agree
    fast = copy.deepcopy(arguments)
    general = copy.deepcopy(arguments)
    unscrub(fast, callbacks, proxy)
    unscrub(general, {**callbacks, "999": [5, "nowhere"]}, proxy)
    assert fast == general


def test_unscrub_nested_int_and_string_paths() -> None:
    args = [{"withArgs": ["[Function]", {"deep": [0, "[Function]"]}]}, "[Function]"]
    callbacks = {
        "3": [0, "withArgs", 0],
        "4": ["0", "withArgs", "1", "deep", 1],
        "5": [1],
    }
    unscrub(args, callbacks, proxy)
    assert args == [
        {"withArgs": [("proxy", 3), {"deep": [0, ("proxy", 4)]}]},
        ("proxy", 5),
    ]


@pytest.mark.parametrize(
    "path",
    [
        [],
        [5],
        [-1],
        ["-1"],
        ["x"],
        [0, "missing"],
        [0, "withArgs", 9],
        [0, "withArgs", 0, "deeper"],
        [0, "kite", "name", 0],
        [1, 0],
        [0, 0],
    ],
)
def test_unscrub_skips_paths_that_do_not_exist(path: list[Any]) -> None:
    args = [{"withArgs": ["[Function]"], "kite": {"name": "n"}}, 7]
    before = copy.deepcopy(args)
    made: list[int] = []

    def make(cid: int) -> Any:
        made.append(cid)
        return ("proxy", cid)

    unscrub(args, {"1": path}, make)
    assert args == before
    assert made == []


def test_unscrub_skips_bad_path_but_places_the_others() -> None:
    args = ["[Function]"]
    unscrub(args, {"0": [3], "1": [0]}, proxy)
    assert args == [("proxy", 1)]


def test_unscrub_logs_skipped_paths(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="kitecore.protocol.dnode"):
        unscrub([1], {"0": [4]}, proxy)
    assert "does not exist" in caplog.text


def test_unscrub_skips_non_integer_ids() -> None:
    args = ["[Function]", "[Function]"]
    unscrub(args, {"x": [0], "1": [1]}, proxy)
    assert args == ["[Function]", ("proxy", 1)]


def test_unscrub_no_callbacks_is_identity() -> None:
    args = [{"a": 1}]
    assert unscrub(args, {}, proxy) is args


def test_callback_inside_callback_arguments() -> None:
    """A callback invocation may carry callbacks itself (args are scrubbed again)."""
    # Side A sends a request whose withArgs carry a function.
    a_rec = Recorder()
    received: list[Any] = []

    def on_data(value: Any, ack: Any) -> None:
        received.append(value)
        ack("thanks")

    scrubbed, cbs = scrub([{"withArgs": [on_data]}], a_rec)
    msg = decode(encode_call("subscribe", scrubbed, cbs))

    # Side B unscrubs: proxies send messages back to A.
    wire: list[str] = []
    b_rec = Recorder(start=100)
    b_acks: list[Any] = []

    def b_proxy(cid: int) -> Any:
        def call(*args: Any) -> None:
            s, c = scrub(list(args), b_rec)
            wire.append(encode_call(cid, s, c))

        return call

    unscrub(msg.arguments, msg.callbacks, b_proxy)
    msg.arguments[0]["withArgs"][0]("tick", b_acks.append)
    assert json.loads(wire[0]) == {
        "method": 0,
        "arguments": ["tick", "[Function]"],
        "callbacks": {"100": [1]},
    }

    # Side A receives the invocation: method is its callback id, args carry B's callback.
    inv = decode(wire[0])
    assert inv.method == 0
    a_wire: list[str] = []

    def a_proxy(cid: int) -> Any:
        return lambda *args: a_wire.append(encode_call(cid, list(args), {}))

    unscrub(inv.arguments, inv.callbacks, a_proxy)
    a_rec.functions[inv.method](*inv.arguments)
    assert received == ["tick"]
    back = decode(a_wire[0])
    assert back == Message(100, ["thanks"], {})
    b_rec.functions[back.method](*back.arguments)
    assert b_acks == ["thanks"]


def test_pure_python_encoder_fallback_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpreters without the C encoder get the same bytes and the same errors."""
    from kitecore.protocol import dnode

    fast = dnode._make_dump()
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    slow = dnode._make_dump()
    obj = {"method": "m", "arguments": [{"é": [1, 2.5, None, True]}, (3,)], "callbacks": {}}
    assert slow(obj) == fast(obj)
    for bad in (math.nan, Unserialisable()):
        with pytest.raises((TypeError, ValueError)):
            slow({"arguments": [bad]})


def test_lone_surrogates_go_out_escaped_and_come_back() -> None:
    """Text UTF-8 cannot carry (a peer's "\\ud800", a surrogateescape filename) is sent as a
    JSON escape instead of failing in the transport."""
    from kitecore.protocol import decode, encode_call

    text = encode_call(0, ["\ud800", "é", "\udcff.txt"], {})
    assert text.isascii()
    text.encode("utf-8")
    assert decode(text).arguments == ["\ud800", "é", "\udcff.txt"]
    assert not encode_call(0, ["é"], {}).isascii()  # the usual case keeps non-ASCII as is


@pytest.mark.parametrize(
    "callbacks",
    [
        {"12": [0, "responseCallback"]},
        {"12": [0, "withArgs", 1]},
        {"12": ["0", "responseCallback"]},
        {"12": []},
        {"x": [0, "responseCallback"]},
        {"\u0661": [0, "responseCallback"]},
        {"12": [True, "responseCallback"]},
        {"12": [0.5, "responseCallback"]},
        {"12": [0, None]},
        {"12": "0.responseCallback"},
        {"1": [0, "responseCallback"], "2": [0, "withArgs", 0]},
    ],
)
def test_decode_parts_is_decode_taken_apart(callbacks: dict[str, Any]) -> None:
    """decode_parts (what a session uses, with the one-callback check inline) accepts and
    refuses exactly what decode does, with the same error."""
    text = json.dumps(
        {"method": "m", "arguments": [{"responseCallback": "[Function]"}], "callbacks": callbacks}
    )
    try:
        message = dnode.decode(text)
    except ProtocolError as exc:
        with pytest.raises(ProtocolError) as caught:
            dnode.decode_parts(text)
        assert str(caught.value) == str(exc)
    else:
        assert dnode.decode_parts(text) == (message.method, message.arguments, message.callbacks)
