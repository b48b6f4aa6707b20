"""Kontrol's arguments and answers, and unverified JWT claims (no sockets)."""

from __future__ import annotations

import pytest

from kitecore import ArgumentError, GenericError, InvalidResponseError, KiteIdentity, Query
from kitecore.discovery import NoKitesError, RegisterResult, to_query, token_expiry
from kitecore.discovery.claims import MalformedTokenError, unverified_claims
from kitecore.discovery.messages import (
    get_token_args,
    map_kontrol_error,
    parse_get_kites_result,
    parse_register_result,
)

BOB = KiteIdentity("bob", "production", "math", "1.0.0", "eu", "host1", "id-1")


def test_to_query_accepts_every_form():
    expected = Query(username="bob", name="math")
    assert to_query(expected) is expected
    assert to_query({"username": "bob", "name": "math"}) == expected
    assert to_query(username="bob", name="math") == expected
    assert to_query({"username": "bob"}, name="math") == expected
    assert to_query(BOB) == BOB.query()
    assert to_query() == Query()


def test_to_query_refuses_typos_and_mixing():
    with pytest.raises(ArgumentError, match=r"unknown query field.*usernme"):
        to_query(usernme="bob")
    with pytest.raises(ArgumentError, match="either a Query or query fields"):
        to_query(Query(username="bob"), name="math")


def test_get_token_args():
    assert get_token_args(Query(id="x")) == Query(id="x").to_wire()
    assert get_token_args(Query(id="x"), force=True) == {**Query(id="x").to_wire(), "force": True}


def test_parse_register_result():
    assert parse_register_result({"url": "u", "heartbeatInterval": 10}) == RegisterResult("u", 10)
    rotated = parse_register_result({"url": "u", "publicKey": "P", "kiteKey": "K"})
    assert (rotated.public_key, rotated.kite_key) == ("P", "K")
    with pytest.raises(GenericError, match="internal error"):
        parse_register_result({"url": "u", "err": "internal error"})
    for bad in (None, "u", {"url": 5}, {"url": "u", "heartbeatInterval": "10"}):
        with pytest.raises(InvalidResponseError):
            parse_register_result(bad)


def test_parse_get_kites_result():
    [record] = parse_get_kites_result(
        {"kites": [{"kite": BOB.to_wire(), "url": "http://h/kite", "keyId": "k", "token": "t"}]}
    )
    assert (record.kite, record.url, record.key_id, record.token) == (
        BOB,
        "http://h/kite",
        "k",
        "t",
    )
    assert parse_get_kites_result({"kites": []}) == []
    assert parse_get_kites_result({"kites": None}) == []
    for bad in (None, [], {"kites": {}}, {"kites": [1]}, {"kites": [{"kite": {"name": 3}}]}):
        with pytest.raises(InvalidResponseError):
            parse_get_kites_result(bad)


def test_no_kites_found_is_mapped():
    mapped = map_kontrol_error(GenericError("no kites found", id="r1"))
    assert isinstance(mapped, NoKitesError)
    assert (mapped.type, mapped.message, mapped.id) == ("genericError", "no kites found", "r1")
    other = GenericError("query matches more than one kite")
    assert map_kontrol_error(other) is other


def test_unverified_claims_and_expiry():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.sig"
    assert unverified_claims(token) == {"sub": "alice", "exp": 1700000000}
    assert token_expiry(token) == 1700000000
    assert token_expiry("e30.e30.x") is None  # {} : no exp
    for bad in ("", "a.b", "a..c", "a.!!!.c", "a.WzFd.c", 5):  # WzFd = [1]
        with pytest.raises(MalformedTokenError):
            unverified_claims(bad)
    with pytest.raises(MalformedTokenError):
        token_expiry("e30.eyJleHAiOiJzb29uIn0.x")  # {"exp": "soon"}
