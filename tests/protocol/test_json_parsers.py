"""The optional fast JSON parser (msgspec, ``kitecore[speed]``) decodes every message to what
the standard library gives, and refuses nothing the standard library accepts: whatever it
refuses is parsed again by the standard library, so each error is the same too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kitecore.protocol import dnode
from kitecore.protocol.errors import ProtocolError

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

#: Texts where JSON parsers are known to differ (numbers, escapes, nesting, extensions).
TRICKY = [
    '{"a":1,"a":2}',
    "-0",
    "-0.0",
    "1e999",
    "-1e999",
    "1e-400",
    "5e-324",
    "1.7976931348623157e308",
    "2.2250738585072011e-308",
    "0.30000000000000004",
    "9007199254740993",
    "9007199254740993.0",
    "100000000000000000000000.0",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1" * 4300,
    "1" * 4301,
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\ud800"',  # a lone surrogate in the text itself (UTF-8 cannot carry it)
    "\ufeff{}",
    " {} ",
    "{}x",
    "NaN",
    "[Infinity, -Infinity]",
    '"\x01"',
    '"\t"',
    "[1,]",
    '{"a":1,}',
    "'a'",
    "tru",
    "",
    "[" * 200 + "]" * 200,
    "[" * 5000 + "]" * 5000,
]


def outcome(text: str) -> tuple[str, Any]:
    """What ``dnode.decode`` makes of ``text`` wrapped as a message's one argument."""
    message = '{"method":"m","arguments":[' + text + "]}"
    try:
        return "ok", dnode.decode(message).arguments
    except ProtocolError as exc:
        return "error", (type(exc).__name__, exc.message)


def both(text: str) -> tuple[str, str]:
    """The outcomes with the standard library alone and with the fast parser first, as
    reprs (which tell 1 from 1.0 and -0.0 from 0.0, and show NaN, never equal to itself)."""
    dnode.use_fast_json(False)
    try:
        slow = outcome(text)
    finally:
        dnode.use_fast_json(True)
    return repr(slow), repr(outcome(text))


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts_decode_alike(text: str) -> None:
    slow, fast = both(text)
    assert slow == fast


def test_big_integers_stay_exact_integers() -> None:
    # a parser that turned integers beyond 64 bits into floats would change the values
    for value in (2**63, 2**64, -(2**63) - 1, 10**30):
        ((decoded,),) = [dnode.decode(f'{{"method":"m","arguments":[{value}]}}').arguments]
        assert decoded == value and type(decoded) is int


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(json_values)
def test_any_value_decodes_alike(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    slow, fast = both(text)
    assert slow == fast
    assert dnode.decode('{"method":"m","arguments":[' + text + "]}").arguments == [value]
