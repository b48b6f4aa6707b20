"""Every hook a kite plugin can implement (pluggy project ``kite``).

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose names match the
specs below; it is found through an entry point in group ``kite`` and loaded by
:mod:`kitecore.plugins`. Hooks are synchronous and run at start-up or on lifecycle events, never
once per request: per-call work (dispatch, auth, middleware) is async and owned by the core.

The ``kite_register_*`` hooks follow the register-callback style: the hook receives a ``register``
callable and calls it once for each thing the plugin provides. Name clashes between plugins are
caught in one place, :mod:`kitecore.plugins`, with one error naming both plugins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeAlias

import pluggy

if TYPE_CHECKING:
    from kitecore.auth import Authenticator
    from kitecore.client import Client
    from kitecore.interceptors import ClientInterceptor, ServerInterceptor
    from kitecore.kite import Kite
    from kitecore.pickers import Picker
    from kitecore.plugins import CommandRegistry
    from kitecore.storage import Storage
    from kitecore.transport import Transport

hookspec = pluggy.HookspecMarker("kite")
hookimpl = pluggy.HookimplMarker("kite")

#: ``factory(kite) -> authenticator``: builds the authenticator for one auth type.
#: The authenticator has ``async def authenticate(request) -> str`` returning the caller's
#: username, or raising :class:`kitecore.protocol.errors.AuthenticationError`.
AuthenticatorFactory: TypeAlias = "Callable[[Kite], Authenticator]"

#: ``factory(url) -> storage``: opens the Kontrol storage a URL such as ``etcd://host:2379``
#: names (:class:`kitecore.storage.Storage`).
StorageFactory: TypeAlias = "Callable[[str], Storage]"

#: ``factory(**options) -> picker``: builds a peer picker (:class:`kitecore.pickers.Picker`)
#: that chooses one kite among several matching a query.
PickerFactory: TypeAlias = "Callable[..., Picker]"


class InterceptorRegister(Protocol):
    """``register(server=..., client=...)``: adds interceptors to one kite
    (:meth:`kitecore.Kite.add_interceptor`)."""

    def __call__(
        self,
        *,
        server: ServerInterceptor | None = None,
        client: ClientInterceptor | None = None,
    ) -> None: ...


# --- Registration: called once per process, when the plugins are loaded ----------------------


@hookspec
def kite_register_transports(register: Callable[[Transport], None]) -> None:
    """Provide transports: call ``register(transport)`` for each one.

    Called once when the plugins are loaded. The transport's ``name`` (``websocket``, ``sockjs``)
    is the key users type; it must be unique across plugins. Returns nothing.
    """


@hookspec
def kite_register_authenticators(register: Callable[[str, AuthenticatorFactory], None]) -> None:
    """Provide authenticators: call ``register(auth_type, factory)`` for each auth type.

    ``auth_type`` is the name found in a request's ``authentication.type`` (``token``,
    ``kiteKey``). Called once when the plugins are loaded. Returns nothing.
    """


@hookspec
def kite_register_storages(register: Callable[[str, StorageFactory], None]) -> None:
    """Provide Kontrol storages: call ``register(url_scheme, factory)`` for each one.

    ``url_scheme`` is the scheme of the storage URL (``memory``, ``etcd``, ``postgres``).
    Called once when the plugins are loaded. Returns nothing.
    """


@hookspec
def kite_register_pickers(register: Callable[[str, PickerFactory], None]) -> None:
    """Provide peer pickers: call ``register(name, factory)`` for each one.

    ``name`` is what users type (``random``, ``round_robin``, ``fastest``, ``least_latency``).
    Called once when the plugins are loaded. Returns nothing.
    """


@hookspec
def kite_register_commands(commands: CommandRegistry) -> None:
    """Provide ``kite`` CLI subcommands: call ``commands.register(name, help, configure_parser,
    run)`` for each one.

    Called once when the plugins are loaded. Returns nothing.
    """


@hookspec(firstresult=True)
def kite_demo(number: float, out: TextIO) -> Awaitable[tuple[Any, Any]] | None:
    """Run ``kite demo``'s walk-through with this plugin's service (kite-kontrol: Kontrol).

    Return an awaitable that prints its steps to ``out`` and gives the results of
    ``square(number)`` and ``kite.ping``; the first plugin that returns one runs. With none,
    ``kite demo`` runs the direct demo (one kite dials the other, no Kontrol).
    """


# --- Per kite: called for every Kite instance -------------------------------------------------


@hookspec
def kite_register_methods(kite: Kite) -> None:
    """Add methods to a kite with ``kite.handle("name")(function)``.

    Called once for every Kite, when it is created and before it serves. Returns nothing.
    """


@hookspec
def kite_register_interceptors(kite: Kite, register: InterceptorRegister) -> None:
    """Wrap ``kite``'s calls: call ``register(server=..., client=...)`` (either may be
    omitted) with interceptors of :mod:`kitecore.interceptors`.

    Called once for every Kite, when it is created (after ``kite_register_methods``); the
    core then calls the interceptors once per call served (``server``) or made with
    ``Client.tell`` (``client``). A plugin that only watches calls may instead call
    ``kite.add_observer(server=..., client=...)`` here (observers: a pair of plain functions
    per side, cheaper per call). A plugin may look at ``kite.config`` and register nothing.
    Returns nothing.
    """


# --- Observation: lifecycle events, never per request -----------------------------------------
# The core calls each plugin's implementation on its own: one that raises is logged with the
# plugin's name and the others still run; the kite starts, accepts or closes as if it had not.


@hookspec
def kite_started(kite: Kite, url: str) -> None:
    """The kite is listening and reachable at ``url``. Returns nothing."""


@hookspec
def kite_stopped(kite: Kite) -> None:
    """The kite has stopped serving and closed its connections. Returns nothing."""


@hookspec
def kite_connected(kite: Kite, client: Client) -> None:
    """A peer connection to ``kite`` was opened (dialled or accepted): ``client`` is the
    :class:`~kitecore.client.Client` that speaks to the peer. Returns nothing."""


@hookspec
def kite_disconnected(kite: Kite, client: Client) -> None:
    """The connection of ``client`` (see :func:`kite_connected`) has ended, for whatever
    reason. Returns nothing."""
