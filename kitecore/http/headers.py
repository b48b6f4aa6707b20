"""An ordered, case-insensitive view of HTTP header pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from sys import intern as _intern

__all__ = ["Headers"]


class Headers:
    """Header pairs with lowercased names and ``str`` values, in the order received.

    Iterating yields ``(name, value)`` pairs; :meth:`get` returns the first value of a name
    (several values of a list-valued header are not joined).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(
            (name.lower(), value) for name, value in items
        )

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from h11's byte pairs (names already lowercased by h11)."""
        headers = cls.__new__(cls)
        # interned: the names, and values like "websocket" or "13", repeat on every
        # connection, and an upgraded connection keeps its request headers for its life
        headers._items = tuple(
            (_intern(name.decode("latin-1")), _short_interned(value.decode("latin-1")))
            for name, value in raw
        )
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        name = name.lower()
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def has_token(self, name: str, token: str) -> bool:
        """Whether the comma-separated header ``name`` lists ``token`` (case-insensitive)."""
        token = token.lower()
        return any(
            part.strip().lower() == token
            for value in self.get_all(name)
            for part in value.split(",")
        )

    def items(self) -> tuple[tuple[str, str], ...]:
        """The pairs as a tuple (what :class:`kitecore.transport.PeerInfo` stores)."""
        return self._items

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


def _short_interned(value: str) -> str:
    return _intern(value) if len(value) < 24 else value
