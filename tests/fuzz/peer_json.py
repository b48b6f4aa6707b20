"""Hypothesis strategies for JSON a hostile peer sends: values, deep nesting, broken text.

The depth generator builds the *text* of nested arrays/objects directly (``"[" * n`` and
friends), so depths of 100,000 need neither Python objects that deep nor a raised recursion
limit.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = ["deep_json", "json_values", "mangled", "peer_json_text", "peer_payloads"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
#: Any JSON value (shallow): what a confused or curious peer sends.
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=20,
)

_OPENERS = ["[", '{"k":', '["s",', '{"":[', '[[{"a":']
_CLOSERS = {"[": "]", '{"k":': "}", '["s",': "]", '{"":[': "]}", '[[{"a":': "}]]"}


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """Nesting from 1 to 100,000 levels deep, closed or left open, with a leaf inside."""
    depth = draw(st.one_of(st.integers(1, 300), st.sampled_from([999, 1000, 5000, 100_000])))
    opener = draw(st.sampled_from(_OPENERS))
    leaf = json.dumps(draw(json_scalars))
    closed = draw(st.booleans())
    text = opener * depth + leaf + (_CLOSERS[opener] * depth if closed else "")
    return draw(st.sampled_from(["", "[", "a", " "])) + text


@st.composite
def mangled(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """``base`` texts cut, spliced with junk, or with a byte changed."""
    text = draw(base)
    how = draw(st.sampled_from(["cut", "insert", "replace", "as is"]))
    if not text or how == "as is":
        return text
    at = draw(st.integers(0, len(text)))
    if how == "cut":
        return text[:at]
    junk = draw(st.text(alphabet='[]{}",:\\0123456789eE.-tfnul \x00\ud7ff\U0001f600', max_size=5))
    if how == "insert":
        return text[:at] + junk + text[at:]
    return text[:at] + junk + text[at + 1 :]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


#: Any text a peer may send where JSON is expected.
peer_json_text = st.one_of(
    st.text(max_size=50),
    json_values.map(_dumps),
    deep_json(),
    mangled(json_values.map(_dumps)),
    mangled(deep_json()),
    st.lists(st.text(max_size=10), max_size=5).map(_dumps),  # well-formed SockJS payloads
    st.integers(4301, 6000).map(lambda n: "[" + "7" * n + "]"),  # past int()'s digit limit
)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


#: Bytes where a JSON body is expected (UTF-8 of the above, or any bytes).
peer_payloads = st.one_of(peer_json_text.map(_utf8), st.binary(max_size=50))
