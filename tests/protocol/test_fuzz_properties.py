"""Fuzzing the parsers of peer input: only documented errors escape (issue 15).

- :func:`dnode.decode` raises :class:`ProtocolError` or returns a message; :meth:`Session.receive`
  never raises; :func:`dnode.unscrub` never raises on what ``decode`` accepted.
- :func:`parse_call_options` raises :class:`CallOptionsError`, :func:`parse_response`
  :class:`KiteError`; :meth:`KiteError.from_wire` always returns an error.
- versions and constraints raise :class:`ArgumentError`.

Deep nesting is generated as text (``"[" * depth``...), so the generators never recurse and
never depend on Python's recursion limit; depths go far past it. ``bench/fuzz.py`` runs the same
properties for longer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from kitecore.protocol import dnode
from kitecore.protocol.envelope import CallOptionsError, parse_call_options, parse_response
from kitecore.protocol.errors import ArgumentError, KiteError, ProtocolError
from kitecore.protocol.session import CallReceived, Session
from kitecore.protocol.version import Constraint, Version, is_constraint, version_matches

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

#: ``KITE_FUZZ_EXAMPLES`` raises the number of examples per property (bench/fuzz.py).
SETTINGS = hypothesis.settings(
    max_examples=int(os.environ.get("KITE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------ generators

huge_digits = st.integers(min_value=4290, max_value=12_000).map(lambda n: "9" * n)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
#: (opening, closing) of one nesting level, written out as text
LEVELS = [("[", "]"), ('{"a":', "}"), ("[1,", "]"), ('{"withArgs":[', "]}"), ("[{}, [", "]]")]


@st.composite
def deep_json(draw: Any) -> str:
    """A JSON text nested ``depth`` levels deep, balanced or cut short, built without recursion."""
    opening, closing = draw(st.sampled_from(LEVELS))
    depth = draw(st.integers(min_value=1, max_value=150_000))
    leaf = draw(st.sampled_from(["0", "null", '"[Function]"', "[]", "{}", "9" * 5000]))
    balanced = draw(st.booleans())
    closes = depth if balanced else draw(st.integers(min_value=0, max_value=depth))
    return opening * depth + leaf + closing * closes


@st.composite
def json_texts(draw: Any) -> str:
    """JSON values as text, sometimes with integers too long to convert spliced in."""
    text = json.dumps(draw(json_values))
    if draw(st.booleans()):
        text = text.replace("0", draw(huge_digits), 1)
    return text


def message_text(method: Any, arguments: str, callbacks: str) -> str:
    return f'{{"method":{method},"arguments":{arguments},"callbacks":{callbacks}}}'


@st.composite
def messages(draw: Any) -> str:
    """Texts shaped like dnode messages, with hostile parts in any slot."""
    method = draw(
        st.one_of(
            st.sampled_from(['"square"', '"kite.ping"', "0", "1", "2", "3.0", "1e308", "-1"]),
            huge_digits,
            json_texts(),
        )
    )
    request = '[{"kite":null,"withArgs":%s,"responseCallback":"[Function]"}]'
    arguments = draw(
        st.one_of(
            json_texts(),
            deep_json(),
            json_texts().map(lambda inner: request % inner),
            deep_json().map(lambda inner: request % inner),
        )
    )
    path_element = st.one_of(
        st.integers(), st.text(max_size=6), huge_digits, huge_digits.map(json.dumps), json_texts()
    )
    path = st.lists(path_element, max_size=5).map(
        lambda items: "[" + ",".join(map(str, items)) + "]"
    )
    callback_id = st.one_of(
        st.integers(min_value=0, max_value=5).map(str), huge_digits, st.text(max_size=4)
    )
    entries = st.lists(st.tuples(callback_id, st.one_of(path, json_texts())), max_size=3)
    callbacks = draw(
        st.one_of(
            st.just('{"0":[0,"responseCallback"]}'),
            entries.map(lambda e: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in e) + "}"),
            json_texts(),
        )
    )
    return message_text(method, arguments, callbacks)


any_text = st.one_of(st.text(max_size=200), json_texts(), deep_json(), messages())


# ------------------------------------------------------------------------ dnode and the session


@SETTINGS
@hypothesis.given(any_text)
def test_decode_raises_only_protocol_errors(text: str) -> None:
    try:
        message = dnode.decode(text)
    except ProtocolError:
        return
    assert type(message.method) in (str, int)
    assert type(message.arguments) is list
    dnode.unscrub(message.arguments, message.callbacks, lambda callback_id: callback_id)


@SETTINGS
@hypothesis.given(st.binary(max_size=200))
def test_decode_of_bytes_raises_only_protocol_errors(data: bytes) -> None:
    try:
        dnode.decode(data)
    except ProtocolError:
        pass


def _session() -> Session:
    session = Session(lambda callback_id: lambda *args: None, max_callbacks=100)
    session.register(print)  # id 0
    for _ in range(3):  # ids 1-3 wait for replies
        session.expect_response(session.new_id(), "pending")
    return session


@SETTINGS
@hypothesis.given(st.lists(any_text, min_size=1, max_size=4))
def test_session_receive_never_raises(texts: list[str]) -> None:
    session = _session()
    for text in texts:
        event = session.receive(text)
        while event is not None:
            if isinstance(event, CallReceived):
                try:
                    parse_call_options(event.arguments)
                except CallOptionsError:
                    pass
            event = session.next_ordered()
    assert session.function_count == 1


@SETTINGS
@hypothesis.given(st.one_of(json_texts(), deep_json(), messages()))
def test_envelope_parsers_raise_only_documented_errors(text: str) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return  # not something decode would hand over
    arguments = value if isinstance(value, list) else [value]
    try:
        parse_call_options(arguments)
    except CallOptionsError:
        pass
    try:
        parse_response(arguments)
    except KiteError:
        pass
    assert isinstance(KiteError.from_wire(value), KiteError)


# ------------------------------------------------------------------------ versions

segments = st.one_of(st.integers(min_value=0, max_value=2**64).map(str), huge_digits)
version_like = st.builds(
    lambda prefix, parts, pre, meta: prefix + ".".join(parts) + pre + meta,
    st.sampled_from(["", "v"]),
    st.lists(segments, min_size=1, max_size=4),
    st.one_of(
        st.just(""),
        st.text("abc-.~0123456789", max_size=8).map(lambda t: "-" + t),
        huge_digits.map(lambda d: "-" + d),
    ),
    st.one_of(st.just(""), st.text("abc.0123456789", max_size=6).map(lambda t: "+" + t)),
)
constraint_like = st.lists(
    st.tuples(st.sampled_from(["", "=", "!=", ">", "<", ">=", "<=", "~>", "=>"]), version_like),
    min_size=1,
    max_size=3,
).map(lambda terms: ", ".join(f"{op} {v}" for op, v in terms))
version_texts = st.one_of(st.text(max_size=40), version_like, constraint_like)


@SETTINGS
@hypothesis.given(version_texts, version_texts)
def test_versions_and_constraints_raise_only_argument_errors(first: str, second: str) -> None:
    for parse in (Version.parse, Constraint.parse):
        try:
            parse(first)
        except ArgumentError as exc:
            assert len(exc.message) < 300  # the input is not echoed whole
    assert is_constraint(first) in (True, False)
    try:
        version_matches(first, second)
    except ArgumentError:
        pass
    try:
        left, right = Version.parse(first), Version.parse(second)
    except ArgumentError:
        return
    assert (left < right) + (left == right) + (left > right) == 1


def test_a_huge_version_segment_is_a_clear_error() -> None:
    with pytest.raises(ArgumentError, match=r"segment 9{30} is larger than 9223372036854775807"):
        Version.parse("1." + "9" * 30)
    with pytest.raises(ArgumentError, match=r"Malformed constraint: >= 1\.9999.* segment"):
        Constraint.parse(">= 1." + "9" * 30)
    with pytest.raises(ArgumentError, match="longer than 1024 characters"):
        Version.parse("1." + "9" * 5000)
    with pytest.raises(ArgumentError, match=r"Malformed constraint: .* longer than 1024"):
        version_matches("1.0.0", "~> " + "9" * 5000)
    assert Version.parse("9223372036854775807").segments == (2**63 - 1,)


def test_huge_numeric_prereleases_compare_as_numbers() -> None:
    small = Version.parse("1.0.0-" + "1" * 1000)
    large = Version.parse("1.0.0-2" + "0" * 1000)
    assert small < large
    assert Version.parse("1.0.0-10") > Version.parse("1.0.0-9")
