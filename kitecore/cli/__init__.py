"""The ``kite`` command line (the kitectl role).

Built-in commands: ``tell``, ``query``, ``register``, ``showkey``, ``plugins``, ``demo``.
Plugins add more through the ``kite_register_commands`` hook (kite-kontrol adds ``kontrol``).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from kitecore.cli import calls, demo, keys, listing
from kitecore.logcontext import FORMAT_ENV, configure_logging
from kitecore.plugins import PluginError, get_registry

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: name -> (help, configure(parser), run(args) -> int or awaitable int)
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[Any], Any]]

BUILTIN_COMMANDS: dict[str, Command] = {
    "tell": calls.TELL,
    "query": calls.QUERY,
    "register": keys.REGISTER,
    "showkey": keys.SHOWKEY,
    "plugins": listing.PLUGINS,
    "demo": demo.DEMO,
}


def build_parser() -> argparse.ArgumentParser:
    """The parser with the built-in commands and every plugin's."""
    parser = argparse.ArgumentParser(prog="kite", description="Kite for Python")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help=f"log lines as text or one JSON object each (default: ${FORMAT_ENV} or text)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure, run) in BUILTIN_COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        configure(command_parser)
        command_parser.set_defaults(run=run)
    for name, command in sorted(get_registry().commands.items()):
        if name in BUILTIN_COMMANDS:
            logger.warning("plugin %s's command %r clashes with a built-in", command.plugin, name)
            continue
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.configure_parser(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kite`` command; returns the exit code."""
    try:
        parser = build_parser()
    except PluginError as exc:
        print(f"kite: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    try:
        configure_logging(os.environ.get("KITE_LOG_LEVEL", "").upper() or level, args.log_format)
    except ValueError as exc:  # a bad KITE_LOG_FORMAT
        print(f"kite: {exc}", file=sys.stderr)
        return 2
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        outcome = args.run(args)
        if inspect.isawaitable(outcome):
            awaitable = outcome

            async def finish() -> Any:
                return await awaitable

            outcome = anyio.run(finish, backend=os.environ.get("KITE_ANYIO_BACKEND", "asyncio"))
    except KeyboardInterrupt:
        return 130
    return int(outcome or 0)
