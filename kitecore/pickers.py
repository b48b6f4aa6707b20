"""The peer-picker interface: choosing one kite among several that match a query.

A :class:`~kitecore.pool.Pool` holds the kites Kontrol returned for a query as
:class:`Candidate` objects and asks its picker which one to call, once per call. After every
call the pool tells the picker how it went (:meth:`Picker.observe`), so pickers that learn
(``fastest``, ``least_latency`` of the ``kite-pickers`` plugin) get the same feedback whoever
wrote them.

Pickers are provided by plugins through the ``kite_register_pickers`` hook as factories,
``factory(**options) -> Picker``, and chosen by name (``kite.pool(query, picker="random")``).
The core ships the two that need no measuring, ``round_robin`` (the default) and ``random``
(:data:`BUILTIN_PICKERS`), used when no plugin registers those names, so a pool works with the
core alone; the ``kite-pickers`` plugin adds ``fastest`` and ``least_latency``.

The pool calls a picker only from the event loop's thread, and :meth:`Picker.pick` and
:meth:`Picker.observe` on every call: they must be synchronous and cheap (no I/O, no awaiting).
Background work such as pinging belongs in :meth:`Picker.run`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kitecore.protocol.errors import (
    DisconnectError,
    KiteTimeoutError,
    SendError,
    ShuttingDownError,
)
from kitecore.protocol.identity import KiteIdentity

if TYPE_CHECKING:
    from kitecore.client import Client

__all__ = [
    "BUILTIN_PICKERS",
    "Candidate",
    "Picker",
    "PickerBase",
    "PickerHost",
    "RandomPicker",
    "RoundRobinPicker",
    "is_failure",
]

logger = logging.getLogger(__name__)


class Candidate:
    """One kite a picker may choose: who it is, where it is, and the pool's client for it.

    Candidates keep their identity across refreshes of the pool (the same kite id gives the
    same object), so a picker may key what it learns by the candidate itself or by :attr:`key`.
    """

    __slots__ = ("__weakref__", "client", "kite", "url")

    def __init__(self, kite: KiteIdentity, url: str, client: Client) -> None:
        #: The kite's identity as Kontrol registered it.
        self.kite = kite
        #: Where the kite serves.
        self.url = url
        #: The pool's (lazily dialed) client of this kite.
        self.client = client

    @property
    def key(self) -> str:
        """A stable name for the kite: its id."""
        return self.kite.id

    def __repr__(self) -> str:
        return f"<Candidate {self.kite.path} at {self.url}>"


@runtime_checkable
class PickerHost(Protocol):
    """What a picker's background task may use (the pool implements it)."""

    @property
    def live(self) -> Sequence[Candidate]:
        """The candidates currently believed reachable."""
        ...

    async def ping(self, candidate: Candidate, timeout: float) -> float:
        """Dial ``candidate`` if needed, call ``kite.ping`` and return the round trip in
        seconds; raises :class:`~kitecore.KiteError` when the kite cannot be reached."""
        ...


@runtime_checkable
class Picker(Protocol):
    """Chooses a kite for each call and learns from how calls went.

    Subclass :class:`PickerBase` to get no-op :meth:`observe`, :meth:`update` and :meth:`run`.
    """

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        """Return one of ``candidates`` (never empty) for the next call."""
        ...

    def observe(self, candidate: Candidate, latency: float, error: BaseException | None) -> None:
        """A call on ``candidate`` took ``latency`` seconds and ended with ``error`` (``None``
        on success). :func:`is_failure` tells a lost or silent kite from an error the remote
        method returned. Also called for a failed dial, with ``latency`` 0."""
        ...

    def update(self, candidates: Sequence[Candidate]) -> None:
        """The set of reachable candidates changed (refresh, a kite lost or revived)."""
        ...

    async def run(self, host: PickerHost) -> None:
        """Background work for the pool's lifetime (e.g. periodic pings); cancelled when the
        pool closes. Return at once if there is none."""
        ...


class PickerBase:
    """A :class:`Picker` that does nothing but :meth:`pick` (which subclasses must define)."""

    #: The name the picker is registered under (for messages).
    name = "picker"

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        raise NotImplementedError

    def observe(self, candidate: Candidate, latency: float, error: BaseException | None) -> None:
        """Ignore the feedback."""

    def update(self, candidates: Sequence[Candidate]) -> None:
        """Ignore changes of the candidate set."""

    async def run(self, host: PickerHost) -> None:
        """No background work."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def is_failure(error: BaseException | None) -> bool:
    """True when ``error`` says the kite itself failed (gone, unreachable, silent or shutting
    down) rather than the method returning an error."""
    return isinstance(error, DisconnectError | KiteTimeoutError | SendError | ShuttingDownError)


class RoundRobinPicker(PickerBase):
    """Takes the candidates in turn (in the pool's order, which survives refreshes), so
    sequential calls spread evenly. The default picker; built into the core."""

    name = "round_robin"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        turn = self._turn
        self._turn = turn + 1
        return candidates[turn % len(candidates)]


class RandomPicker(PickerBase):
    """Chooses uniformly at random; ``seed`` makes the choices repeatable. Built into the core."""

    name = "random"

    def __init__(self, *, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def pick(self, candidates: Sequence[Candidate]) -> Candidate:
        return candidates[self._random.randrange(len(candidates))]


#: The pickers of the core, by name: a pool uses one when no plugin registers that name.
BUILTIN_PICKERS: dict[str, Callable[..., Picker]] = {
    "round_robin": RoundRobinPicker,
    "random": RandomPicker,
}

#: Pickers that are not built in, and the plugin distribution that provides them.
PLUGIN_PICKERS = {"fastest": "kite-pickers", "least_latency": "kite-pickers"}
