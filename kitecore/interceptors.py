"""Interceptors: code that wraps every call a kite serves or makes (metrics, tracing, logs).

An interceptor is an async function given the call and ``proceed``; it awaits ``proceed()`` to
run the call and returns (or raises) what it gives::

    async def timed(call: ServerCall, proceed: Proceed) -> Any:
        started = time.perf_counter()
        try:
            return await proceed()
        finally:
            print(call.method, time.perf_counter() - started)

    kite.add_interceptor(server=timed)

A **server** interceptor wraps authentication, throttling and the method's handlers of each
call the kite serves (calls of unknown methods are answered before it: their names are the
caller's choosing). It sees the method, the :class:`~kitecore.Request` (``request.username``
is the authenticated caller once ``proceed()`` has returned or raised), the peer and the
call's incoming :attr:`ServerCall.metadata`. Whatever ``proceed()`` raises is what the caller
receives: a :class:`~kitecore.KiteError` as it is, any other exception as ``genericError``.

A **client** interceptor wraps :meth:`Client.tell <kitecore.Client.tell>`: it sees the
target client, the method and the arguments, and may add string entries to
:attr:`ClientCall.metadata`, sent with the request (see below).

Plugins register interceptors at start-up through the ``kite_register_interceptors`` hook;
users call :meth:`Kite.add_interceptor <kitecore.Kite.add_interceptor>`. Interceptors run in
registration order, the first one outermost. A kite without interceptors pays one falsy
check per call and nothing else.

Call metadata
-------------
Metadata rides in the request's call options object as one extra field, ``"metadata"``, an
object of string values, beside ``kite``, ``authentication``, ``withArgs`` and
``responseCallback``. The field is sent only when an interceptor put something in it. Go kites
(which decode the options into a struct) and kite.js servers (which read the fields they know)
ignore fields they do not know, so a call with metadata still works against them; this is
where W3C ``traceparent``/``tracestate`` travel between Python kites. On the server, a missing
or malformed ``metadata`` field reads as an empty mapping.

Observers
---------
Code that only watches calls (metrics, tracing) can register an **observer** instead: a pair
of plain functions, ``start(call) -> state`` run as the call starts and ``end(call, state,
error)`` run as it ends (``error`` is ``None`` on success, else what the call raised)::

    def started(call: ServerCall) -> float:
        return time.perf_counter()

    def ended(call: ServerCall, started: float, error: BaseException | None) -> None:
        print(call.method, error_type(error), time.perf_counter() - started)

    kite.add_observer(server=(started, ended))

An observer adds no coroutine to the call's await chain (an interceptor adds its own frame,
resumed each time the call waits): about a tenth of an interceptor's cost per call. Observers
are the code closest to the wire: on the server they run outside every interceptor (``start``
first when the request arrives, ``end`` last), on the client inside them (``start`` once the
interceptors have called ``proceed()``, so it sees the arguments and metadata as they will be
sent). Starts run in registration order, ends in the reverse order, in the task of the call,
so a context variable set by ``start`` and reset by ``end`` is seen by the handler (server)
or the request being sent (client). An observer should not raise: an exception from ``start``
or ``end`` fails the call as an interceptor's would, after the ends of the observers already
started have run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from kitecore.protocol.errors import KiteError

if TYPE_CHECKING:
    from kitecore.client import Client
    from kitecore.kite import Kite
    from kitecore.request import Request
    from kitecore.transport import PeerInfo

__all__ = [
    "METADATA_FIELD",
    "ClientCall",
    "ClientInterceptor",
    "ClientObserver",
    "Proceed",
    "ServerCall",
    "ServerInterceptor",
    "ServerObserver",
    "chain_of",
    "combine_observers",
    "error_type",
    "incoming_metadata",
    "run_chain",
]

#: The call options field that carries :attr:`ClientCall.metadata`.
METADATA_FIELD = "metadata"

_EMPTY: Mapping[str, str] = MappingProxyType({})

#: ``await proceed()`` runs the rest of the chain and the call itself.
Proceed: TypeAlias = Callable[[], Awaitable[Any]]


class ServerCall:
    """A call being served, as a server interceptor sees it."""

    __slots__ = ("_metadata", "kite", "method", "options", "peer", "request")

    def __init__(
        self,
        kite: Kite,
        request: Request,
        peer: PeerInfo,
        options: Mapping[str, Any],
    ) -> None:
        #: The kite serving the call.
        self.kite = kite
        #: The method's name.
        self.method = request.method
        #: The request the handlers get (``request.id`` is the id an error reply carries).
        self.request = request
        #: The connection's transport and remote address.
        self.peer = peer
        #: The raw call options object (read it, don't change it).
        self.options = options
        self._metadata: Mapping[str, str] | None = None

    @property
    def metadata(self) -> Mapping[str, str]:
        """The incoming call metadata (string keys and values; empty if none was sent)."""
        metadata = self._metadata
        if metadata is None:
            metadata = self._metadata = incoming_metadata(self.options)
        return metadata


class ClientCall:
    """A call being made with :meth:`Client.tell`, as a client interceptor sees it."""

    __slots__ = ("args", "client", "kite", "metadata", "method")

    def __init__(self, client: Client, method: str, args: tuple[Any, ...]) -> None:
        #: The local kite making the call.
        self.kite = client.kite
        #: The client of the kite being called (``client.remote_kite``, ``client.url``).
        self.client = client
        self.method = method
        #: The arguments; an interceptor may replace them (e.g. wrap the functions among
        #: them, which become callbacks) before calling ``proceed()``.
        self.args = args
        #: String entries to send with the request; interceptors may add to it.
        self.metadata: dict[str, str] = {}


#: ``async def interceptor(call: ServerCall, proceed) -> result``.
ServerInterceptor: TypeAlias = Callable[[ServerCall, Proceed], Awaitable[Any]]
#: ``async def interceptor(call: ClientCall, proceed) -> result``.
ClientInterceptor: TypeAlias = Callable[[ClientCall, Proceed], Awaitable[Any]]


#: ``(start, end)``: ``start(call) -> state`` before a served call, ``end(call, state, error)``
#: after it.
ServerObserver: TypeAlias = tuple[
    Callable[[ServerCall], Any], Callable[[ServerCall, Any, "BaseException | None"], None]
]
#: ``(start, end)``: ``start(call) -> state`` before a call is sent, ``end(call, state,
#: error)`` once it is answered (or failed).
ClientObserver: TypeAlias = tuple[
    Callable[[ClientCall], Any], Callable[[ClientCall, Any, "BaseException | None"], None]
]


def incoming_metadata(options: Mapping[str, Any]) -> Mapping[str, str]:
    """The ``metadata`` field of call options: only its string entries; empty if absent."""
    raw = options.get(METADATA_FIELD)
    if type(raw) is not dict or not raw:
        return _EMPTY
    for value in raw.values():  # (a JSON object's keys are strings)
        if type(value) is not str:
            return {k: v for k, v in raw.items() if type(k) is str and type(v) is str}
    return raw  # the call's own parsed object: no copy needed


def error_type(error: BaseException | None) -> str:
    """The wire error type a call ended with: ``""`` for none, the type of a
    :class:`~kitecore.KiteError`, ``genericError`` for any other exception and ``cancelled``
    when the call was cancelled (e.g. its caller disconnected)."""
    if error is None:
        return ""
    if isinstance(error, KiteError):
        return error.type or "genericError"
    if isinstance(error, Exception):
        return "genericError"
    return "cancelled"


def run_chain(
    interceptors: Sequence[Callable[[Any, Proceed], Awaitable[Any]]],
    call: Any,
    innermost: Proceed,
) -> Awaitable[Any]:
    """The awaitable of ``innermost`` run inside ``interceptors`` (the first one outermost).

    A plain function, not a coroutine: awaiting its result awaits the first interceptor
    directly, one frame less per call. Each inner step is a ``functools.partial`` (made in C,
    called without a Python frame of its own).
    """
    proceed = innermost
    for index in range(len(interceptors) - 1, 0, -1):
        proceed = partial(interceptors[index], call, proceed)
    return interceptors[0](call, proceed)


#: ``chain(call, innermost)``: the awaitable of ``innermost`` run inside a kite's
#: interceptors of one side (what :func:`chain_of` makes).
Chain: TypeAlias = Callable[[Any, Proceed], Awaitable[Any]]


def chain_of(interceptors: Sequence[Callable[[Any, Proceed], Awaitable[Any]]]) -> Chain:
    """``chain(call, innermost)`` doing what ``run_chain(interceptors, call, innermost)``
    does, made once per kite and side when an interceptor is added: a single interceptor is
    its own chain (called directly, no function in between), several go through
    :func:`run_chain`."""
    if not interceptors:
        raise ValueError("no interceptors to chain")
    if len(interceptors) == 1:
        return interceptors[0]
    return partial(run_chain, tuple(interceptors))


#: An observer of either side (what :func:`combine_observers` takes and gives).
_Observer: TypeAlias = tuple[
    Callable[[Any], Any], Callable[[Any, Any, "BaseException | None"], None]
]


def combine_observers(observers: Sequence[_Observer]) -> _Observer:
    """One observer doing what ``observers`` do: starts in order, ends in reverse order.

    If a ``start`` raises, the ends of the observers already started run with its
    exception, which then propagates; every started observer's ``end`` runs even if another
    one's raises (its exception then propagates). Made once per kite and side when an
    observer is added (nested pairs of plain functions: no loop, no list per call).
    """
    if not observers:
        raise ValueError("no observers to combine")
    combined = observers[0]
    for observer in observers[1:]:
        combined = _pair(combined, observer)
    return combined


def _pair(outer: _Observer, inner: _Observer) -> _Observer:
    start_outer, end_outer = outer
    start_inner, end_inner = inner

    def start(call: Any) -> tuple[Any, Any]:
        state = start_outer(call)
        try:
            return state, start_inner(call)
        except BaseException as exc:
            end_outer(call, state, exc)
            raise

    def end(call: Any, states: tuple[Any, Any], error: BaseException | None) -> None:
        try:
            end_inner(call, states[1], error)
        finally:
            end_outer(call, states[0], error)

    return start, end
