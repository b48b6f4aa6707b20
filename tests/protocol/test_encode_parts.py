"""Messages built from parts encoded once (a caller's identity, a reply's frame) are exactly
the text :func:`encode_call` gives for the whole message, including its refusals."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kitecore.protocol import SendError, encode_call, scrub
from kitecore.protocol.dnode import encode_reply
from kitecore.protocol.envelope import RequestEncoder, request_arguments, response_arguments
from kitecore.protocol.session import Session

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

IDENTITY = {
    "username": "alice",
    "environment": "production",
    "name": "exp2",
    "version": "1.0.0",
    "region": "eu",
    "hostname": "host1",
    "id": "0b6f9e1c",
}

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),  # lone surrogates included: those messages go out escaped
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)


@hypothesis.given(
    method=st.text(max_size=10),
    args=st.lists(values, max_size=3),
    identity=st.dictionaries(st.text(max_size=6), st.text(max_size=10), max_size=7),
    auth=st.none() | st.fixed_dictionaries({"type": st.text(max_size=6), "key": st.text()}),
    metadata=st.none() | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
)
def test_a_request_is_what_encode_call_writes(
    method: str,
    args: list[Any],
    identity: dict[str, str],
    auth: dict[str, str] | None,
    metadata: dict[str, str] | None,
) -> None:
    callbacks: dict[str, Any] = {"3": [0, "responseCallback"]}
    options = request_arguments(identity, auth, args, "[Function]")
    extra = {"metadata": metadata} if metadata else None
    if extra:
        options[0].update(extra)
    expected = encode_call(method, options, callbacks)
    assert RequestEncoder(identity, auth).encode(method, args, callbacks, extra) == expected


@hypothesis.given(callback_id=st.integers(min_value=0, max_value=2**40), result=values)
def test_a_reply_is_what_encode_call_writes(callback_id: int, result: Any) -> None:
    expected = encode_call(callback_id, response_arguments(result), {})
    assert encode_reply(callback_id, result) == expected
    session = Session(lambda i: None)
    assert session.encode_reply(callback_id, result) == expected


def test_a_reply_holding_functions_registers_them_as_callbacks() -> None:
    def fn() -> None:
        pass

    session = Session(lambda i: None)
    text = session.encode_reply(7, {"done": fn, "n": 1})
    other = Session(lambda i: None)
    scrubbed, callbacks = scrub(response_arguments({"done": fn, "n": 1}), other.register)
    assert text == encode_call(7, scrubbed, callbacks)
    assert session.function_count == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, object(), {1j: 1}])
def test_refusals_are_the_same(bad: Any) -> None:
    with pytest.raises(SendError) as whole:
        encode_call(1, response_arguments(bad), {})
    with pytest.raises(SendError) as reply:
        encode_reply(1, bad)
    assert str(reply.value) == str(whole.value)
    with pytest.raises(SendError) as request:
        RequestEncoder(IDENTITY, None).encode("m", [bad], {})
    with pytest.raises(SendError) as whole_request:
        encode_call("m", request_arguments(IDENTITY, None, [bad], "[Function]"), {})
    assert str(request.value) == str(whole_request.value)


def test_a_cycle_is_refused_without_registering_anything() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    session = Session(lambda i: None)
    with pytest.raises(SendError):
        session.encode_reply(1, cyclic)
    assert session.function_count == 0


@hypothesis.given(
    method=st.text(max_size=10),
    args=st.lists(values, max_size=3),
    callback_id=st.integers(min_value=0, max_value=2**40),
    auth=st.none() | st.fixed_dictionaries({"type": st.text(max_size=6), "key": st.text()}),
)
def test_a_plain_request_is_what_encode_writes(
    method: str, args: list[Any], callback_id: int, auth: dict[str, str] | None
) -> None:
    encoder = RequestEncoder(IDENTITY, auth)
    callbacks: dict[str, Any] = {str(callback_id): [0, "responseCallback"]}
    expected = encode_call(method, request_arguments(IDENTITY, auth, args, "[Function]"), callbacks)
    assert encoder.encode_plain(method, args, callback_id) == expected
    assert encoder.encode_plain(method, args, callback_id) == expected  # its cached head
    assert encoder.encode(method, args, callbacks) == expected


@hypothesis.given(
    args=st.lists(values, max_size=3),
    callback_id=st.integers(min_value=0, max_value=2**40),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=60), min_size=1, max_size=3),
)
def test_a_plain_request_with_call_metadata_is_what_encode_writes(
    args: list[Any], callback_id: int, metadata: dict[str, str]
) -> None:
    encoder = RequestEncoder(IDENTITY, None)
    callbacks: dict[str, Any] = {str(callback_id): [0, "responseCallback"]}
    options = request_arguments(IDENTITY, None, args, "[Function]")
    options[0]["metadata"] = metadata
    expected = encode_call("square", options, callbacks)
    extra = {"metadata": metadata}
    assert encoder.encode_plain("square", args, callback_id, extra) == expected
    assert encoder.encode("square", args, callbacks, extra) == expected


def test_the_cache_of_method_heads_is_bounded() -> None:
    encoder = RequestEncoder(IDENTITY, None)
    for n in range(1000):
        text = encoder.encode_plain(f"m{n}", [n], n)
        assert text == encoder.encode(f"m{n}", [n], {str(n): [0, "responseCallback"]})
    assert len(encoder._starts) <= 64


@hypothesis.given(
    args=st.lists(values, max_size=2),
    callback_id=st.integers(min_value=0, max_value=2**40),
    extra=st.dictionaries(
        st.text(max_size=8),
        values | st.dictionaries(st.text(max_size=6), st.text(max_size=20) | values, max_size=3),
        min_size=1,
        max_size=3,
    ),
)
def test_extra_call_options_of_any_shape_are_what_encode_call_writes(
    args: list[Any], callback_id: int, extra: dict[str, Any]
) -> None:
    """Metadata (string to string) is written by the string encoder directly; anything else
    (a number among the values, a nested object) goes through the generic one: same text."""
    encoder = RequestEncoder(IDENTITY, None)
    callbacks: dict[str, Any] = {str(callback_id): [0, "responseCallback"]}
    options = request_arguments(IDENTITY, None, args, "[Function]")
    options[0].update(extra)
    expected = encode_call("square", options, callbacks)
    assert encoder.encode_plain("square", args, callback_id, extra) == expected
    assert encoder.encode("square", args, callbacks, extra) == expected
