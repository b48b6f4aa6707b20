"""Properties of the JWT parsers that read tokens and kite.keys peers send: only their own
errors escape (``TokenError`` from ``kite_auth_token.compact.decode_unverified``,
``MalformedTokenError`` from ``kitecore.discovery.claims.unverified_claims``), whatever JSON
(100,000 levels deep included) the base64url segments hold."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from kite_auth_token import TokenError
from kite_auth_token.compact import decode_unverified
from peer_json import peer_json_text

from kitecore.discovery.claims import MalformedTokenError, unverified_claims


def _segment(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


segments = st.one_of(peer_json_text.map(_segment), st.text(max_size=20))
tokens = st.one_of(
    st.tuples(segments, segments, st.text(max_size=10)).map(".".join),
    st.text(max_size=40),
)


@given(tokens)
def test_decode_unverified_raises_only_token_errors(token: str) -> None:
    try:
        decoded = decode_unverified(token)
    except TokenError:
        return
    assert decoded is not None


@given(tokens)
def test_unverified_claims_raises_only_malformed_token_errors(token: str) -> None:
    try:
        claims = unverified_claims(token)
    except MalformedTokenError:
        return
    assert isinstance(claims, dict)
