"""The ``proxy`` plugin (entry point ``kite_proxy.plugin``): ``kite.tunnel`` on every kite and
the ``kite proxy`` / ``kite tunnelproxy`` commands."""

from __future__ import annotations

from kitecore import Kite
from kitecore.hookspecs import hookimpl
from kitecore.plugins import CommandRegistry

from . import command
from .kite_side import tunnel_method

__all__ = ["kite_register_commands", "kite_register_methods"]


@hookimpl
def kite_register_methods(kite: Kite) -> None:
    """Add ``kite.tunnel`` (honoured only from the tunnel proxy the kite registered with)."""
    kite.handle("kite.tunnel", tunnel_method)


@hookimpl
def kite_register_commands(commands: CommandRegistry) -> None:
    """Add ``kite proxy`` and ``kite tunnelproxy``."""
    commands.register("proxy", command.PROXY_HELP, command.configure_proxy, command.run_proxy)
    commands.register(
        "tunnelproxy", command.TUNNEL_HELP, command.configure_tunnel, command.run_tunnel
    )
