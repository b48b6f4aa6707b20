"""Finding, loading and asking the kite plugins.

Plugins are entry points in group ``kite``. stevedore enumerates them and imports them one by
one; a plugin that fails to import is logged and skipped (or fatal in strict mode). Each loaded
object is registered on a pluggy ``PluginManager("kite")`` holding the specs of
:mod:`kitecore.hookspecs`; misspelled hooks are caught right after loading.

The ``kite_register_*`` hooks are called once, plugin by plugin, so that a name registered by two
plugins is reported with both plugins' names. The result is a :class:`PluginRegistry`.

Environment:

``KITE_PLUGINS``
    Comma-separated entry-point names to load (``websocket,sockjs``). Unset: load every installed
    plugin. Set but empty: load none.
``KITE_PLUGINS_STRICT``
    ``1`` makes a plugin that fails to import (or a name in ``KITE_PLUGINS`` that is not
    installed) an error instead of a logged warning.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

import pluggy
from stevedore import ExtensionManager, NamedExtensionManager

from kitecore import hookspecs
from kitecore.hookspecs import AuthenticatorFactory, PickerFactory, StorageFactory
from kitecore.transport import Transport

if TYPE_CHECKING:
    from kitecore.storage import Storage

logger = logging.getLogger(__name__)

#: The pluggy project name and the entry-point group.
PROJECT = "kite"
PLUGINS_ENV = "KITE_PLUGINS"
STRICT_ENV = "KITE_PLUGINS_STRICT"

_T = TypeVar("_T")


class PluginError(Exception):
    """A plugin could not be loaded or used, or plugins disagree; the message names the plugin."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One loaded plugin, as ``kite plugins`` shows it."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{name, module, distribution, version, hooks}``."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
        }


@dataclass(frozen=True, slots=True)
class Command:
    """A ``kite`` subcommand contributed by a plugin."""

    name: str
    help: str
    configure_parser: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | Awaitable[int]]
    plugin: str


class _Catalog(Generic[_T]):
    """Things of one kind by name, remembering which plugin registered each one.

    This is the one place where registrations are checked and name clashes are reported.
    """

    def __init__(
        self, kind: str, is_valid: Callable[[object], bool] | None = None, expected: str = ""
    ) -> None:
        self.kind = kind
        self.items: dict[str, _T] = {}
        self._is_valid = is_valid
        self._expected = expected
        self._owners: dict[str, str] = {}

    def add(self, plugin: str, name: str, item: _T) -> None:
        """Record ``item`` under ``name`` for ``plugin``; reject bad values and name clashes."""
        if self._is_valid is not None and not self._is_valid(item):
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {name!r} as {item!r}, "
                f"which is not {self._expected}"
            )
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with bad name {name!r}")
        if name in self.items:
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {self._owners[name]!r} "
                f"and plugin {plugin!r}"
            )
        self.items[name] = item
        self._owners[name] = plugin

    def register_for(self, plugin: str) -> Callable[[str, _T], None]:
        """The ``register(name, item)`` callback handed to ``plugin``'s hook."""
        return lambda name, item: self.add(plugin, name, item)


class CommandRegistry:
    """What ``kite_register_commands`` receives: ``commands.register(...)`` adds a subcommand."""

    def __init__(self, plugin: str, catalog: _Catalog[Command]) -> None:
        self._plugin = plugin
        self._catalog = catalog

    def register(
        self,
        name: str,
        help: str,
        configure_parser: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int | Awaitable[int]],
    ) -> None:
        """Add ``kite NAME``: ``configure_parser`` adds its arguments to the subparser, and
        ``run(args)`` returns the exit code (or an awaitable of it, run on the event loop)."""
        command = Command(name, help, configure_parser, run, self._plugin)
        self._catalog.add(self._plugin, name, command)


class PluginRegistry:
    """The loaded plugins and everything they registered.

    Built by :func:`load_plugins`; the ``kite_register_*`` hooks have all been called. Per-kite
    hooks are called through :attr:`pm` (``registry.pm.hook.kite_register_methods(...)``),
    lifecycle hooks through :meth:`notify`.
    """

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        transports = _Catalog[Transport]("transport", _is_transport, "a Transport")
        authenticators = _Catalog[AuthenticatorFactory]("authenticator", callable, "callable")
        storages = _Catalog[StorageFactory]("storage", callable, "callable")
        pickers = _Catalog[PickerFactory]("picker", callable, "callable")
        commands = _Catalog[Command]("command")

        def transport_register_for(plugin: str) -> Callable[[Transport], None]:
            add = transports.register_for(plugin)
            return lambda transport: add(getattr(transport, "name", ""), transport)

        self._call_each("kite_register_transports", "register", transport_register_for)
        self._call_each("kite_register_authenticators", "register", authenticators.register_for)
        self._call_each("kite_register_storages", "register", storages.register_for)
        self._call_each("kite_register_pickers", "register", pickers.register_for)
        self._call_each(
            "kite_register_commands", "commands", lambda p: CommandRegistry(p, commands)
        )

        self.transports: dict[str, Transport] = transports.items
        self.authenticators: dict[str, AuthenticatorFactory] = authenticators.items
        self.storages: dict[str, StorageFactory] = storages.items
        self.pickers: dict[str, PickerFactory] = pickers.items
        self.commands: dict[str, Command] = commands.items

    def _call_each(self, hook_name: str, arg_name: str, arg_for: Callable[[str], object]) -> None:
        """Call ``hook_name`` once per implementing plugin (in pluggy's order), so every
        registration is attributed to the plugin that made it."""
        hook = getattr(self.pm.hook, hook_name)
        all_plugins = self.pm.get_plugins()
        for name in dict.fromkeys(impl.plugin_name for impl in reversed(hook.get_hookimpls())):
            plugin = self.pm.get_plugin(name)
            only_this = self.pm.subset_hook_caller(
                hook_name, [p for p in all_plugins if p is not plugin]
            )
            try:
                only_this(**{arg_name: arg_for(name)})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed in {hook_name}: {exc!r}") from exc

    def notify(self, hook_name: str, **kwargs: object) -> None:
        """Call the observation hook ``hook_name`` (``kite_started``, ``kite_connected``...) on
        each plugin that implements it, in pluggy's order. One that raises is logged with its
        plugin's name and the others still run: like a user's hook, a broken observer never
        stops a kite from starting, accepting a connection or closing."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception:
                logger.exception("plugin %r raised in %s", impl.plugin_name, hook_name)

    def transport(self, name: str) -> Transport:
        """The transport called ``name``; :class:`PluginError` lists the installed ones."""
        return _lookup(self.transports, "transport", name)

    def authenticator(self, auth_type: str) -> AuthenticatorFactory:
        """The authenticator factory for ``auth_type`` (``token``, ``kiteKey``)."""
        return _lookup(self.authenticators, "authenticator", auth_type)

    def picker(self, name: str) -> PickerFactory:
        """The picker factory called ``name`` (``random``, ``round_robin``...)."""
        return _lookup(self.pickers, "picker", name)

    def storage_for_url(self, url: str) -> Storage:
        """Open the Kontrol storage ``url`` names, chosen by its scheme (``memory://``)."""
        scheme = urlsplit(url).scheme
        if not scheme:
            raise PluginError(f"storage URL {url!r} has no scheme (like memory:// or etcd://)")
        return _lookup(self.storages, "storage", scheme)(url)

    def describe(self) -> list[dict[str, Any]]:
        """The loaded plugins as JSON-able data, for ``kite plugins``."""
        return [info.as_dict() for info in self.plugins]


def load_plugins(
    *,
    names: Collection[str] | None = None,
    strict: bool | None = None,
    extra_plugins: Iterable[object] = (),
) -> PluginRegistry:
    """Load the installed plugins into a new :class:`PluginRegistry` (never cached).

    ``names`` limits which entry points load (default: ``KITE_PLUGINS``, else all); ``strict``
    makes import failures fatal (default: ``KITE_PLUGINS_STRICT``). ``extra_plugins`` are
    in-process plugin objects or modules registered after the entry points.

    Raises :class:`PluginError` when a plugin implements an unknown hook or does not fit a spec,
    when two plugins register the same name, or, in strict mode, when a plugin fails to import.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a collection of plugin names, not the string {names!r}")
    if names is None:
        names = _names_from_env()
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    dists = _distributions_by_entry_point()
    plugins: list[PluginInfo] = []
    for ext in _import_entry_points(names, strict):
        dist, version = dists.get((ext.name, ext.entry_point.value), (None, None))
        plugins.append(_register(pm, ext.plugin, ext.name, ext.module_name, dist, version))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        module = getattr(plugin, "__module__", None) or name
        plugins.append(_register(pm, plugin, name, module, None, None))
    _check_pending(pm)
    return PluginRegistry(pm, plugins)


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded on first use from the installed plugins and the
    ``KITE_PLUGINS`` / ``KITE_PLUGINS_STRICT`` environment variables."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = load_plugins()
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry, so the next :func:`get_registry` loads afresh."""
    global _registry
    with _registry_lock:
        _registry = None


def _names_from_env() -> list[str] | None:
    value = os.environ.get(PLUGINS_ENV)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _import_entry_points(names: Collection[str] | None, strict: bool) -> list[Any]:
    """Import the ``kite`` entry points (all, or those in ``names``) one by one."""

    def on_failure(
        _manager: object, entry_point: importlib.metadata.EntryPoint, exc: BaseException
    ) -> None:
        if strict:
            raise PluginError(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: {exc!r}"
            ) from exc
        logger.error(
            "plugin %r (%s) failed to import and is skipped",
            entry_point.name,
            entry_point.value,
            exc_info=exc,
        )

    if names is None:
        manager: ExtensionManager[Any] = ExtensionManager(
            PROJECT, invoke_on_load=False, on_load_failure_callback=on_failure
        )
        return list(manager)

    manager = NamedExtensionManager(
        PROJECT,
        names=list(names),
        invoke_on_load=False,
        on_load_failure_callback=on_failure,
        on_missing_entrypoints_callback=None,
    )
    installed = manager.entry_points_names()
    missing = sorted(set(names) - set(installed))
    if missing:
        message = (
            f"{PLUGINS_ENV}/names ask for plugins that are not installed: {', '.join(missing)}; "
            f"installed: {', '.join(sorted(installed)) or 'none'}"
        )
        if strict:
            raise PluginError(message)
        logger.warning("%s", message)
    return list(manager)


def _distributions_by_entry_point() -> dict[tuple[str, str], tuple[str, str]]:
    """``(entry-point name, value) -> (distribution, version)`` for group ``kite``.

    stevedore's cached entry points carry no distribution, so it is looked up here.
    """
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for entry_point in importlib.metadata.entry_points(group=PROJECT):
        dist = entry_point.dist
        if dist is not None:
            found[(entry_point.name, entry_point.value)] = (dist.metadata["Name"], dist.version)
    return found


def _register(
    pm: pluggy.PluginManager,
    plugin: object,
    name: str,
    module: str,
    distribution: str | None,
    version: str | None,
) -> PluginInfo:
    """Register ``plugin`` on ``pm`` under ``name`` and describe it."""
    if pm.has_plugin(name):
        raise PluginError(f"two plugins are called {name!r}; plugin names must be unique")
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} does not fit the kite hook specs: {exc}") from exc
    except ValueError as exc:  # the same object registered twice
        raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
    hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
    return PluginInfo(name, module, distribution, version, hooks)


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Turn pluggy's "unknown hook" into an error naming the plugin, the hook and a likely fix."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        known = sorted(n for n in vars(hookspecs) if n.startswith("kite_"))
        unknown = [
            caller.name for caller in pm.get_hookcallers(exc.plugin) or () if not caller.has_spec()
        ]
        hints = [
            f"{hook!r} (did you mean {match[0]!r}?)"
            if (match := difflib.get_close_matches(hook, known, n=1))
            else repr(hook)
            for hook in unknown
        ]
        raise PluginError(
            f"plugin {name!r} implements unknown hook {', '.join(hints)}; "
            f"kite hooks are: {', '.join(known)}"
        ) from exc


def _lookup(items: dict[str, _T], kind: str, name: str) -> _T:
    try:
        return items[name]
    except KeyError:
        installed = ", ".join(sorted(items)) or "none"
        raise PluginError(f"unknown {kind} {name!r}; installed {kind}s: {installed}") from None


def _is_transport(item: object) -> bool:
    return isinstance(item, Transport)
