"""Property: scrub -> encode -> decode -> unscrub gives back the original structure."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kitecore.protocol import decode, encode_call, scrub, unscrub

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


def _make_function(n: int) -> Any:
    def fn() -> int:
        return n

    return fn


FUNCTIONS = [_make_function(n) for n in range(4)]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(FUNCTIONS),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=25,
)


def _normalise(value: Any) -> Any:
    """What the peer sees: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _count_functions(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_count_functions(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_functions(v) for v in value.values())
    return 1 if callable(value) else 0


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(trees, max_size=4))
def test_scrub_unscrub_round_trip(arguments: list[Any]) -> None:
    snapshot = copy.deepcopy(arguments)
    table: dict[int, Any] = {}

    def register(fn: Any) -> int:
        table[len(table)] = fn
        return len(table) - 1

    scrubbed, callbacks = scrub(arguments, register)
    assert len(callbacks) == _count_functions(arguments)
    if not callbacks:
        assert scrubbed is arguments
    msg = decode(encode_call("m", scrubbed, callbacks))
    restored = unscrub(msg.arguments, msg.callbacks, table.__getitem__)

    assert restored == _normalise(arguments)
    assert arguments == snapshot  # scrub did not touch the caller's structure
