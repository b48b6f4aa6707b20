"""Kite error objects: wire mapping both ways, Go's string form."""

from __future__ import annotations

import builtins
import pickle
from typing import Any

import pytest

from kitecore.protocol import (
    ArgumentError,
    AuthenticationError,
    DisconnectError,
    GenericError,
    InvalidResponseError,
    KiteError,
    KiteTimeoutError,
    MethodNotFoundError,
    ProtocolError,
    RequestLimitError,
    SendError,
    ShuttingDownError,
)

ERROR_CLASSES = [
    (MethodNotFoundError, "methodNotFound"),
    (AuthenticationError, "authenticationError"),
    (ArgumentError, "argumentError"),
    (GenericError, "genericError"),
    (RequestLimitError, "requestLimitError"),
    (KiteTimeoutError, "timeout"),
    (DisconnectError, "disconnect"),
    (SendError, "sendError"),
    (InvalidResponseError, "invalidResponse"),
    (ProtocolError, "protocolError"),
]


@pytest.mark.parametrize(("cls", "wire_type"), ERROR_CLASSES)
def test_error_types_round_trip(cls: type[KiteError], wire_type: str) -> None:
    err = cls("something broke", code="E1", id="5f0c2a9d1e3b4a77")
    assert err.type == wire_type
    wire = err.to_wire()
    assert wire == {
        "type": wire_type,
        "message": "something broke",
        "code": "E1",
        "id": "5f0c2a9d1e3b4a77",
    }
    assert list(wire) == ["type", "message", "code", "id"]
    back = KiteError.from_wire(wire)
    assert type(back) is cls
    assert (back.type, back.message, back.code, back.id) == (
        wire_type,
        "something broke",
        "E1",
        "5f0c2a9d1e3b4a77",
    )
    assert isinstance(back, KiteError)


def test_to_wire_always_has_four_keys() -> None:
    assert MethodNotFoundError("Method not found: foo").to_wire() == {
        "type": "methodNotFound",
        "message": "Method not found: foo",
        "code": "",
        "id": "",
    }


def test_timeout_is_a_builtin_timeout_error() -> None:
    err = KiteTimeoutError('No response to "square" method in 4s')
    assert isinstance(err, builtins.TimeoutError)
    with pytest.raises(TimeoutError):
        raise err


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (GenericError("negative argument"), "negative argument"),
        (GenericError("negative argument", id="5f0c"), "negative argument (5f0c)"),
        (KiteError("plain"), "plain"),
        (KiteError("no type", type=""), "no type"),
        (KiteError("no type", type="", id="9"), "no type (9)"),
        (MethodNotFoundError("Method not found: foo"), "methodNotFound: Method not found: foo"),
        (
            AuthenticationError("token: token is expired", id="ab12"),
            "authenticationError: token: token is expired (ab12)",
        ),
        (KiteTimeoutError("No response"), "timeout: No response"),
        (KiteError("custom", type="myError", code="7"), "myError: custom"),
    ],
)
def test_go_string_form(err: KiteError, text: str) -> None:
    assert str(err) == text


def test_type_argument_overrides_class_type() -> None:
    err = GenericError("x", type="special")
    assert err.type == "special"
    assert err.to_wire()["type"] == "special"
    assert KiteError("x").type == "genericError"


def test_unknown_type_is_kept() -> None:
    wire = {"type": "quotaExceeded", "message": "too many", "code": "Q", "id": "1"}
    err = KiteError.from_wire(wire)
    assert type(err) is KiteError
    assert err.to_wire() == wire
    assert str(err) == "quotaExceeded: too many (1)"


@pytest.mark.parametrize(
    ("obj", "message", "code", "id"),
    [
        ({"type": "argumentError"}, None, "", ""),
        ({"type": "argumentError", "message": "bad", "code": None, "id": None}, "bad", "", ""),
        ({"type": "argumentError", "message": "bad", "code": 42}, "bad", "42", ""),
        ({"type": "argumentError", "message": 12}, "12", "", ""),
    ],
)
def test_from_wire_tolerates_missing_and_odd_keys(
    obj: dict[str, Any], message: str | None, code: str, id: str
) -> None:
    err = KiteError.from_wire(obj)
    assert isinstance(err, ArgumentError)
    if message is None:
        assert "without a message" in err.message
    else:
        assert err.message == message
    assert (err.code, err.id) == (code, id)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("something failed", "something failed"),
        ({"message": "boom"}, "boom"),
        ({"message": "boom", "name": "Error"}, "boom"),
        ({"message": "x is undefined", "name": "TypeError"}, "TypeError: x is undefined"),
        ({"message": "nope", "code": "ENOENT"}, "nope"),
        (42, "42"),
        ([1, "a"], '[1,"a"]'),
        (True, "true"),
    ],
)
def test_from_wire_non_kite_shapes_give_generic_error(obj: Any, message: str) -> None:
    err = KiteError.from_wire(obj)
    assert type(err) is GenericError
    assert err.type == "genericError"
    assert err.message == message


def test_from_wire_empty_shapes_give_generic_error_with_explanation() -> None:
    assert "empty error" in KiteError.from_wire(None).message
    empty = KiteError.from_wire({})
    assert type(empty) is GenericError
    assert "without a message" in empty.message


def test_non_string_message_is_converted() -> None:
    err = GenericError(ValueError("bad value"))  # type: ignore[arg-type]
    assert err.message == "bad value"
    assert err.to_wire()["message"] == "bad value"


def test_from_wire_unserialisable_fields_use_repr() -> None:
    err = KiteError.from_wire({"type": "argumentError", "message": {1, 2}})
    assert err.message == "{1, 2}"


def test_from_wire_passes_kite_error_through() -> None:
    err = SendError("x")
    assert KiteError.from_wire(err) is err


@pytest.mark.parametrize(("cls", "wire_type"), ERROR_CLASSES)
def test_errors_pickle_with_all_fields(cls: type[KiteError], wire_type: str) -> None:
    err = cls("m", code="c", id="i")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert back.to_wire() == {"type": wire_type, "message": "m", "code": "c", "id": "i"}


def test_shutting_down_is_a_generic_error_with_its_own_code() -> None:
    wire = ShuttingDownError(id="r1").to_wire()
    # what Go kites and kite.js see: a genericError, as before the code existed
    assert wire == {
        "type": "genericError",
        "message": "kite is shutting down",
        "code": "shuttingDown",
        "id": "r1",
    }
    back = KiteError.from_wire(wire)
    assert type(back) is ShuttingDownError
    assert (back.message, back.id) == ("kite is shutting down", "r1")
    assert isinstance(back, GenericError)
    # the code is what tells it apart: a handler's genericError with another code stays one
    assert type(KiteError.from_wire({**wire, "code": ""})) is GenericError
    assert type(KiteError.from_wire({**wire, "type": "argumentError"})) is ArgumentError
    assert pickle.loads(pickle.dumps(back)).to_wire() == wire


def test_repr_shows_fields() -> None:
    assert repr(SendError("closed", id="1")) == (
        "SendError(type='sendError', message='closed', code='', id='1')"
    )
