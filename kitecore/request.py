"""What a handler sees: :class:`Request` and its :class:`Arguments`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from kitecore.protocol.envelope import Authentication
from kitecore.protocol.errors import ArgumentError
from kitecore.protocol.identity import KiteIdentity

if TYPE_CHECKING:
    from kitecore.client import Client
    from kitecore.kite import Kite

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if callable(value):
        return "a function"
    return type(value).__name__


def check_type(value: Any, kind: type[T], what: str) -> T:
    """Return ``value`` if it is of ``kind`` (JSON's view of numbers), else raise argumentError."""
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        if ok:
            value = int(value)
    elif kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        expected = _TYPE_NAMES.get(kind, kind.__name__)
        raise ArgumentError(f"{what} must be {expected}, not {_describe(value)}")
    return cast(T, value)  # checked above to be a `kind`


class Arguments:
    """The positional arguments of a call (Kite's ``withArgs``), with checked accessors.

    Every accessor raises :class:`ArgumentError` (sent back as ``argumentError``) when the
    arguments do not have the asked-for shape.
    """

    __slots__ = ("_values",)

    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __getitem__(self, index: int) -> Any:
        try:
            return self._values[index]
        except IndexError:
            raise ArgumentError(
                f"argument {index} is missing: got {len(self._values)} argument(s)"
            ) from None

    def __repr__(self) -> str:
        return f"Arguments({self._values!r})"

    def as_list(self) -> list[Any]:
        """All arguments as a (new) list."""
        return list(self._values)

    @overload
    def one(self) -> Any: ...
    @overload
    def one(self, kind: type[T]) -> T: ...
    def one(self, kind: type[T] | None = None) -> Any:
        """The single argument, optionally checked to be of ``kind``."""
        if len(self._values) != 1:
            raise ArgumentError(f"Invalid array length: expected 1 argument, got {len(self)}")
        value = self._values[0]
        return value if kind is None else check_type(value, kind, "the argument")

    def of_length(self, length: int) -> list[Any]:
        """All arguments, which must be exactly ``length`` of them."""
        if len(self._values) != length:
            raise ArgumentError(
                f"Invalid array length: expected {length} arguments, got {len(self)}"
            )
        return list(self._values)

    def get(self, index: int, kind: type[T]) -> T:
        """Argument ``index``, checked to be of ``kind``."""
        return check_type(self[index], kind, f"argument {index}")

    def string(self, index: int = 0) -> str:
        return self.get(index, str)

    def number(self, index: int = 0) -> float:
        return self.get(index, float)

    def integer(self, index: int = 0) -> int:
        return self.get(index, int)

    def boolean(self, index: int = 0) -> bool:
        return self.get(index, bool)

    def mapping(self, index: int = 0) -> dict[str, Any]:
        return self.get(index, dict)

    def array(self, index: int = 0) -> list[Any]:
        return self.get(index, list)

    def function(self, index: int = 0) -> Any:
        """Argument ``index``, which must be a function the caller passed."""
        value = self[index]
        if not callable(value):
            raise ArgumentError(f"argument {index} must be a function, not {_describe(value)}")
        return value


def new_request_id() -> str:
    """16 random hex characters, like Go's request ids (for logs, not secrets)."""
    return f"{random.getrandbits(64):016x}"


class Request:
    """One incoming call, handed to every handler in the method's chain.

    ``client`` is the remote end: a handler may call methods on its caller with
    ``await r.client.tell(...)``. ``context`` is a dict the handlers of one chain share.
    ``username`` is the authenticated username, or the one the caller claimed when the
    method needs no authentication.
    """

    __slots__ = (
        "_id",
        "args",
        "auth",
        "client",
        "context",
        "kite",
        "local_kite",
        "method",
        "username",
    )

    def __init__(
        self,
        *,
        method: str,
        args: Arguments,
        caller: KiteIdentity | None,
        auth: Authentication | None,
        client: Client,
        local_kite: Kite,
    ) -> None:
        self._id: str | None = None  # made when first read: most calls never need it
        self.method = method
        self.args = args
        #: The identity the caller claimed (not authenticated by itself).
        self.kite = caller
        self.auth = auth
        self.client = client
        self.local_kite = local_kite
        self.username = caller.username if caller is not None else ""
        self.context: dict[str, Any] = {}

    @property
    def id(self) -> str:
        """This call's id: 16 random hex characters (in error replies and log lines)."""
        request_id = self._id
        if request_id is None:
            request_id = self._id = new_request_id()
        return request_id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    @property
    def connected(self) -> bool:
        """False once the caller's connection has dropped (the handler is then cancelled)."""
        return self.client.connected

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.id} from {self.username or '?'}>"

    @classmethod
    def served(
        cls,
        method: str,
        with_args: list[Any],
        caller: KiteIdentity | None,
        auth: Authentication | None,
        client: Client,
        local_kite: Kite,
    ) -> Request:
        """The request of a call being served: what ``Request(method=method,
        args=Arguments(with_args), caller=caller, ...)`` makes, in fewer steps (one is made
        for every call a kite serves; a keyword call alone costs a third of it)."""
        request = _new_object(cls)
        request._id = None
        request.method = method
        request.args = _new_arguments(with_args)
        request.kite = caller
        request.auth = auth
        request.client = client
        request.local_kite = local_kite
        request.username = caller.username if caller is not None else ""
        request.context = {}
        return request


_new_object = object.__new__


def _new_arguments(values: list[Any]) -> Arguments:
    arguments = _new_object(Arguments)
    arguments._values = values
    return arguments
