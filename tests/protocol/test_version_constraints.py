"""Versions and constraints with hashicorp/go-version semantics."""

from __future__ import annotations

import operator
from typing import Any

import pytest

from kitecore.protocol import ArgumentError, Constraint, Version, is_constraint, version_matches


@pytest.mark.parametrize(
    ("text", "segments", "prerelease", "metadata"),
    [
        ("1", (1,), "", ""),
        ("1.2", (1, 2), "", ""),
        ("1.2.3", (1, 2, 3), "", ""),
        ("v1.2.3", (1, 2, 3), "", ""),
        ("1.2.3.4", (1, 2, 3, 4), "", ""),
        ("1.2.3-beta1", (1, 2, 3), "beta1", ""),
        ("1.2.3-1", (1, 2, 3), "1", ""),
        ("1.2.3beta", (1, 2, 3), "beta", ""),
        ("1.2.3+x", (1, 2, 3), "", "x"),
        ("1.2.3-rc.1+build.5", (1, 2, 3), "rc.1", "build.5"),
        ("10.20.30", (10, 20, 30), "", ""),
    ],
)
def test_parse_version(
    text: str, segments: tuple[int, ...], prerelease: str, metadata: str
) -> None:
    version = Version.parse(text)
    assert (version.segments, version.prerelease, version.metadata) == (
        segments,
        prerelease,
        metadata,
    )


@pytest.mark.parametrize("text", ["", "x", "1.", ".1", "1..2", "1.0 ", " 1.0", "≥1", "1,0"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ArgumentError, match="Malformed version"):
        Version.parse(text)


def test_version_str() -> None:
    assert str(Version.parse("v1.2.3-rc.1+b")) == "1.2.3-rc.1+b"


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("1.0", "1.0.0", 0),
        ("1", "1.0.0.0", 0),
        ("v1.2.3", "1.2.3", 0),
        ("1.0.0+a", "1.0.0+b", 0),
        ("1.2", "1.10", -1),
        ("1.2.3", "1.2.3.1", -1),
        ("2.0.0", "1.99.99", 1),
        ("1.0.0-beta", "1.0.0", -1),
        ("1.0-beta", "1.0.0", -1),
        ("1.0.0-alpha", "1.0.0-beta", -1),
        ("1.0.0-beta.2", "1.0.0-beta.11", -1),
        ("1.0.0-1", "1.0.0-alpha", -1),
        ("1.0.0-alpha.1", "1.0.0-alpha", 1),
        ("1.0.0-alpha.beta", "1.0.0-alpha", -1),  # go-version quirk, kept
        ("1.0.0-rc.1", "1.0.0-rc.1.1", -1),
        ("0.9.9", "1.0.0-alpha", -1),
        ("1.0.0-01", "1.0.0-1", -1),
    ],
)
def test_version_ordering(a: str, b: str, order: int) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert va.compare(vb) == order
    assert vb.compare(va) == -order
    assert (va == vb) is (order == 0)
    assert (va < vb) is (order < 0)
    assert (va <= vb) is (order <= 0)
    assert (va > vb) is (order > 0)
    assert (va >= vb) is (order >= 0)
    if order == 0:
        assert hash(va) == hash(vb)


def test_sorting_versions() -> None:
    texts = ["1.10.0", "1.2.0", "1.2.0-beta", "0.1", "1.2.0-alpha", "1.2.1"]
    assert [str(v) for v in sorted(map(Version.parse, texts))] == [
        "0.1",
        "1.2.0-alpha",
        "1.2.0-beta",
        "1.2.0",
        "1.2.1",
        "1.10.0",
    ]


def test_version_not_equal_to_other_types() -> None:
    assert Version.parse("1.0") != "1.0"


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge])
def test_versions_order_only_against_versions(op: Any) -> None:
    with pytest.raises(TypeError):
        op(Version.parse("1.0"), "1.0")


@pytest.mark.parametrize(
    ("constraint", "version", "ok"),
    [
        ("1.0.0", "1.0.0", True),
        ("1.0.0", "1.0", True),
        ("= 1.0.0", "1.0.1", False),
        ("=1.0.0", "1.0.0", True),
        ("!= 1.0.0", "1.0.1", True),
        ("!= 1.0.0", "1.0.0", False),
        ("> 1.0", "1.0.1", True),
        ("> 1.0", "1.0.0", False),
        ("< 1.4", "1.3.9", True),
        ("< 1.4", "1.4.0", False),
        (">= 1.0", "1.0.0", True),
        (">= 1.0", "0.9.9", False),
        (">= 1.5.5", "1.5.5", True),
        (">= 1.5.5", "1.5.4", False),
        ("<= 1.2", "1.2.0", True),
        ("<= 1.2", "1.2.1", False),
        (">= 1.0, < 1.4", "1.0.0", True),
        (">= 1.0, < 1.4", "1.3.99", True),
        (">= 1.0, < 1.4", "1.4.0", False),
        (">= 1.0, < 1.4", "0.9", False),
        ("  >=1.0 ,<1.4  ", "1.2", True),
        (">= 1.0.0", "v1.2.0", True),
        # Pessimistic: ~> 1.2 is >= 1.2, < 2.0; ~> 1.2.3 is >= 1.2.3, < 1.3.0.
        ("~> 1.1", "1.1.0", True),
        ("~> 1.1", "1.9.9", True),
        ("~> 1.1", "2.0.0", False),
        ("~> 1.1", "1.0.9", False),
        ("~> 1.2.3", "1.2.3", True),
        ("~> 1.2.3", "1.2.10", True),
        ("~> 1.2.3", "1.3.0", False),
        ("~> 1.2.3", "1.2.2", False),
        ("~> 1.0", "1.0.0", True),
        ("~> 1", "3.0", True),  # go-version: one segment only sets a floor
        ("~> 1.2.3.4", "1.2.3", False),
        ("~> 1.2.3.4", "1.3", False),
        ("~> 1.2.3.4", "1.2.3.5", True),
        # Prereleases only satisfy constraints with a prerelease on the same segments.
        (">= 1.0", "1.5.0-beta", False),
        ("< 2.0", "1.5.0-beta", False),
        (">= 1.5.0-alpha", "1.5.0-beta", True),
        (">= 1.5.0-beta", "1.5.0-alpha", False),
        (">= 1.5.0-alpha", "1.6.0-beta", False),
        (">= 1.5.0-alpha", "1.6.0", True),
        ("~> 1.5.0-alpha", "1.5.0-beta", True),
        ("~> 1.5.0-alpha", "1.5.0", False),
        ("~> 1.5", "1.5.1-beta", False),
        ("= 1.0.0-beta", "1.0.0-beta", True),
        ("!= 1.0.0", "1.0.0-beta", True),
        ("= 1.0.0", "1.0.0+meta", True),
    ],
)
def test_constraint_table(constraint: str, version: str, ok: bool) -> None:
    parsed = Constraint.parse(constraint)
    assert parsed.check(Version.parse(version)) is ok
    assert parsed.check(version) is ok


@pytest.mark.parametrize(
    "text",
    ["", ",", ">> 1.0", "=> 1.0", "~>", ">= 1.0,", "1.0 || 2.0", ">= x", "~ 1.0", ">= 1.0 1.1"],
)
def test_malformed_constraints(text: str) -> None:
    with pytest.raises(ArgumentError, match="Malformed constraint"):
        Constraint.parse(text)


def test_non_string_constraint() -> None:
    with pytest.raises(ArgumentError, match="Malformed constraint"):
        Constraint.parse(None)  # type: ignore[arg-type]


def test_constraint_str_keeps_original() -> None:
    assert str(Constraint.parse(">= 1.0, < 1.4")) == ">= 1.0, < 1.4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.0.0", False),
        ("v1.0", False),
        (">= 1.0", True),
        ("~> 1.1", True),
        (">= 1.0, < 1.4", True),
        ("= 1.0", True),
        (" 1.0", True),
        ("garbage", False),
        ("", False),
    ],
)
def test_is_constraint(text: str, expected: bool) -> None:
    assert is_constraint(text) is expected


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ("1.0.0", "1.0.0", True),
        ("1.0.0", "1.0", True),
        ("1.0.0", "v1.0.0", True),
        ("1.0.0", "1.0.1", False),
        ("1.0.0-beta", "1.0.0", False),
        ("1.2.0", ">= 1.0, < 1.4", True),
        ("1.4.0", ">= 1.0, < 1.4", False),
        ("latest", "1.0.0", False),
        ("latest", ">= 1.0", False),
        ("", ">= 1.0", False),
    ],
)
def test_version_matches(version: str, spec: str, ok: bool) -> None:
    assert version_matches(version, spec) is ok


def test_version_matches_bad_spec_raises() -> None:
    with pytest.raises(ArgumentError, match="Malformed constraint"):
        version_matches("1.0.0", ">>> 1")
