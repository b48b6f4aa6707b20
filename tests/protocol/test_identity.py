"""Kite identities and Kontrol queries."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kitecore.protocol import ArgumentError, KiteIdentity, Query

GO_KITE = {
    "name": "exp2",
    "username": "alice",
    "id": "0b6f9e1c-51b7-4c6e-9b5e-2f1d3c4b5a69",
    "environment": "production",
    "region": "eu",
    "version": "1.0.0",
    "hostname": "host1",
}
KITE = KiteIdentity(
    username="alice",
    environment="production",
    name="exp2",
    version="1.0.0",
    region="eu",
    hostname="host1",
    id="0b6f9e1c-51b7-4c6e-9b5e-2f1d3c4b5a69",
)
FIELDS = ["username", "environment", "name", "version", "region", "hostname", "id"]


def test_field_order() -> None:
    assert [f.name for f in dataclasses.fields(KiteIdentity)] == FIELDS
    assert [f.name for f in dataclasses.fields(Query)] == FIELDS


def test_identity_from_and_to_wire_in_go_order() -> None:
    assert KiteIdentity.from_wire(GO_KITE) == KITE
    wire = KITE.to_wire()
    assert wire == GO_KITE
    assert list(wire) == ["name", "username", "id", "environment", "region", "version", "hostname"]


def test_identity_from_wire_missing_and_null_fields_are_empty() -> None:
    kite = KiteIdentity.from_wire({"name": "math", "username": None, "extra": 1})
    assert kite == KiteIdentity("", "", "math", "", "", "", "")


@pytest.mark.parametrize("obj", [None, "alice", [1], {"name": 1}, {"version": 1.0}, {"id": ["x"]}])
def test_identity_from_wire_rejects_wrong_shapes(obj: Any) -> None:
    with pytest.raises(ArgumentError):
        KiteIdentity.from_wire(obj)


def test_identity_path_round_trip() -> None:
    path = "/alice/production/exp2/1.0.0/eu/host1/0b6f9e1c-51b7-4c6e-9b5e-2f1d3c4b5a69"
    assert KITE.path == path
    assert str(KITE) == path
    assert KiteIdentity.from_path(path) == KITE


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/alice/prod", ("alice", "prod", "", "", "", "", "")),
        ("/", ("", "", "", "", "", "", "")),
        ("/a/b/c/d/e/f/g/h", ("a", "b", "c", "d", "e", "f", "g/h")),
        ("/a//c", ("a", "", "c", "", "", "", "")),
    ],
)
def test_identity_from_path_partial(path: str, expected: tuple[str, ...]) -> None:
    assert dataclasses.astuple(KiteIdentity.from_path(path)) == expected


@pytest.mark.parametrize("path", ["alice/prod/math", "", " /a"])
def test_identity_from_path_requires_leading_slash(path: str) -> None:
    with pytest.raises(ArgumentError):
        KiteIdentity.from_path(path)


def test_validate_accepts_complete_identity() -> None:
    KITE.validate()


@pytest.mark.parametrize("field", FIELDS)
def test_validate_empty_field(field: str) -> None:
    with pytest.raises(ArgumentError) as info:
        dataclasses.replace(KITE, **{field: ""}).validate()
    assert info.value.message == f"Empty Kite field: {field}"


@pytest.mark.parametrize("field", FIELDS)
def test_validate_slash_in_field(field: str) -> None:
    with pytest.raises(ArgumentError) as info:
        dataclasses.replace(KITE, **{field: "a/b"}).validate()
    assert info.value.message == f"Field \"{field}\" must not contain '/'"


def test_identity_query_matches_itself_only() -> None:
    query = KITE.query()
    assert query.matches(KITE)
    assert not query.matches(dataclasses.replace(KITE, id="other"))


# ------------------------------------------------------------------------------------- Query


def test_query_wire_round_trip_in_kontrol_order() -> None:
    query = Query(username="alice", environment="production", name="math", version="~> 1.1")
    wire = query.to_wire()
    assert list(wire) == FIELDS
    assert wire["version"] == "~> 1.1"
    assert Query.from_wire(wire) == query


def test_query_from_wire_ignores_unknown_keys() -> None:
    assert Query.from_wire({"username": "bob", "who": {"x": 1}}) == Query(username="bob")


@pytest.mark.parametrize("obj", [None, "bob", {"username": 5}, {"name": True}])
def test_query_from_wire_rejects_wrong_shapes(obj: Any) -> None:
    with pytest.raises(ArgumentError):
        Query.from_wire(obj)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice/prod/math", Query("alice", "prod", "math")),
        ("/alice/prod/math", Query("alice", "prod", "math")),
        ("/alice/prod/math/1.0.0", Query("alice", "prod", "math", "1.0.0")),
        ("alice", Query("alice")),
        ("", Query()),
        ("/a/b/c/d/e/f/g", Query("a", "b", "c", "d", "e", "f", "g")),
    ],
)
def test_query_from_path(text: str, expected: Query) -> None:
    assert Query.from_path(text) == expected


def test_query_str() -> None:
    assert str(Query("alice", "prod", "math")) == "/alice/prod/math"
    assert str(Query(username="alice", id="x")) == "/alice//////x"


def test_query_is_empty() -> None:
    assert Query().is_empty()
    assert not Query(id="x").is_empty()


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        (Query(), True),
        (Query(username="alice"), True),
        (Query(username="bob"), False),
        (Query("alice", "production", "exp2"), True),
        (Query("alice", "production", "exp3"), False),
        (Query(id=KITE.id), True),
        (Query(region="us"), False),
        (Query(name="exp2", version="1.0.0"), True),
        (Query(name="exp2", version="1.0"), True),
        (Query(name="exp2", version="1.0.1"), False),
        (Query(name="exp2", version=">= 1.0.0"), True),
        (Query(name="exp2", version=">= 1.0, < 1.4"), True),
        (Query(name="exp2", version="~> 1.1"), False),
        (Query(name="exp2", version="~> 1.0"), True),
        (Query(name="exp2", version="> 1.0.0"), False),
        (Query(name="exp2", version="!= 1.0.0"), False),
    ],
)
def test_query_matches(query: Query, matches: bool) -> None:
    assert query.matches(KITE) is matches


def test_query_matches_unparsable_versions() -> None:
    odd = dataclasses.replace(KITE, version="latest")
    assert Query(version="latest").matches(odd)
    assert not Query(version=">= 1.0").matches(odd)


def test_query_matches_malformed_constraint_raises() -> None:
    with pytest.raises(ArgumentError, match="Malformed constraint"):
        Query(version=">> 1.0").matches(KITE)


def test_identity_from_wire_repeated_calls_stay_correct() -> None:
    first = KiteIdentity.from_wire(GO_KITE)
    assert KiteIdentity.from_wire(dict(GO_KITE)) == first
    # Same values but one of them not a string: must still be refused, not served from memory.
    with pytest.raises(ArgumentError):
        KiteIdentity.from_wire({**GO_KITE, "version": 1})
    with pytest.raises(ArgumentError):
        KiteIdentity.from_wire({**GO_KITE, "name": ["unhashable"]})
    # A null field is "" and does not pick up a remembered identity with other values.
    assert KiteIdentity.from_wire({**GO_KITE, "region": None}).region == ""
    assert KiteIdentity.from_wire({**GO_KITE, "region": "us"}).region == "us"


def test_identity_from_wire_the_last_object_remembered_is_a_copy() -> None:
    """The object parsed last is remembered (an equal one is the same identity): changed
    afterwards by whoever holds it, it changes nothing remembered."""
    wire = {**GO_KITE, "username": "alice"}
    alice = KiteIdentity.from_wire(wire)
    wire["username"] = "mallory"  # the message's object, changed after it was parsed
    assert KiteIdentity.from_wire({**GO_KITE, "username": "mallory"}).username == "mallory"
    assert KiteIdentity.from_wire({**GO_KITE, "username": "alice"}) == alice
    for name in ("a", "b", "a", "a", "b"):  # one after another, each its own
        assert KiteIdentity.from_wire({**GO_KITE, "name": name}).name == name
    with pytest.raises(ArgumentError):  # equal to no string: refused, as before
        KiteIdentity.from_wire({**GO_KITE, "name": 1})


def test_identity_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from kitecore.protocol import identity

    monkeypatch.setattr(identity, "_RECENT_IDENTITIES", {})
    monkeypatch.setattr(identity, "_RECENT_IDENTITIES_MAX", 3)
    kites = [KiteIdentity.from_wire({**GO_KITE, "id": str(n)}) for n in range(10)]
    assert [k.id for k in kites] == [str(n) for n in range(10)]
    assert len(identity._RECENT_IDENTITIES) <= 3
