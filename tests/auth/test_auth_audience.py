"""Audiences: derived from queries (§6.3) and matched against kites (§6.2)."""

from __future__ import annotations

import pytest
from kite_auth_token import TokenError, audience_for_query, audience_matches, check_audience


@pytest.mark.parametrize(
    ("query", "audience"),
    [
        ({"username": "bob", "environment": "production", "name": "math"}, "/bob/production/math"),
        ({"username": "bob", "environment": "production"}, "/bob/production"),
        ({"username": "bob"}, "/bob"),
        ({"username": "bob", "name": "math"}, "/bob//math"),
        ({}, "/"),  # an ID-only query: the root audience
    ],
)
def test_audience_for_query(query: dict[str, str], audience: str) -> None:
    assert audience_for_query(**query) == audience


KITE = ("bob", "production", "math")


@pytest.mark.parametrize(
    ("audience", "matches"),
    [
        ("/", True),
        ("/bob", True),
        ("/bob/production", True),
        ("/bob/production/math", True),
        ("/bob//math", True),
        ("/bob/production/math/1.0.0/eu/host/id", True),
        ("/bob/production/math/9.9.9", True),  # fields after the name are ignored
        ("/bob/", True),
        ("/alice", False),
        ("/Bob", False),
        ("/bo", False),
        ("//production/math", False),
        ("/bob/development", False),
        ("/bob/production/calc", False),
        ("/bob//calc", False),
        ("", False),
        ("bob/production/math", False),
    ],
)
def test_audience_matches(audience: str, matches: bool) -> None:
    assert audience_matches(audience, *KITE) is matches


@pytest.mark.parametrize(
    ("audience", "reason"),
    [
        ("", "invalid empty audience"),
        ("bob", "invalid audience: invalid kite string (bob)"),
        ("/alice/production", 'audience: username "alice" not allowed (/alice/production)'),
        ("/bob/dev", 'audience: environment "dev" not allowed (/bob/dev)'),
        ("/bob/production/calc", 'audience: kite "calc" not allowed (/bob/production/calc)'),
    ],
)
def test_check_audience_reasons(audience: str, reason: str) -> None:
    with pytest.raises(TokenError) as info:
        check_audience(audience, *KITE)
    assert str(info.value) == reason


def test_empty_username_audience_only_matches_empty_username() -> None:
    assert not audience_matches("//production/math", *KITE)
    assert audience_matches("//production/math", "", "production", "math")
