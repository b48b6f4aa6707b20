"""The ``kite`` command line (the kitectl role).

Built-in commands: ``tell``, ``query``, ``register``, ``showkey``, ``plugins``, ``demo``.
Plugins add more through the ``kite_register_commands`` hook (kite-kontrol adds ``kontrol``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import anyio

from kitecore.cli import calls, demo, keys, listing
from kitecore.cli.common import UsageError, fail
from kitecore.config import ConfigError
from kitecore.kite import ListenError
from kitecore.logcontext import FORMAT_ENV, configure_logging
from kitecore.plugins import PluginError, get_registry
from kitecore.protocol.errors import KiteError

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


def installed_version() -> str:
    """kitecore's version from its installed metadata (the source's when not installed)."""
    try:
        return importlib.metadata.version("kitecore")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        from kitecore import __version__

        return __version__


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``kite tell: error: ... (see 'kite tell --help')``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser with the built-in commands and every plugin's."""
    parser = ArgumentParser(prog="kite", description="Kite for Python")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"kitecore {installed_version()}")
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
        _add_verbose(command_parser)
        command_parser.set_defaults(run=run)
    for name, command in sorted(get_registry().commands.items()):
        if name in BUILTIN_COMMANDS:
            logger.warning("plugin %s's command %r clashes with a built-in", command.plugin, name)
            continue
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.configure_parser(command_parser)
        _add_verbose(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


#: Commands that plugins of this repository add: what to say when one is asked for but not loaded.
PLUGIN_COMMANDS = {
    "kontrol": (
        "Kontrol comes with the kite-kontrol plugin, which is not loaded: "
        "pip install ./plugins/kite-kontrol ./plugins/kite-auth-token (from a kite checkout), "
        "or add 'kontrol' to KITE_PLUGINS if that is set"
    ),
}


def _missing_plugin_command(argv: Sequence[str]) -> str | None:
    """The hint for a plugin's command that is asked for but not loaded, if that is the case."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command in PLUGIN_COMMANDS and command not in get_registry().commands:
        return PLUGIN_COMMANDS[command]
    return None


VERBOSE_HELP = "log more (-v info, -vv debug and tracebacks); before or after the command"


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the command too (``kite tell -v ...``), adding to one given before it."""
    if "-v" not in parser._option_string_actions:
        parser.add_argument(
            "-v",
            "--verbose",
            dest="sub_verbose",
            action="count",
            default=0,
            help=VERBOSE_HELP,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kite`` command; returns the exit code.

    A mistake of the user's (a bad argument or ``KITE_*`` value, a port in use, a closed
    pipe) ends the command with one line on stderr and a non-zero code, never a traceback
    (``-vv`` adds the traceback of unexpected errors to the log).
    """
    try:
        parser = build_parser()
    except PluginError as exc:
        print(f"kite: {exc}", file=sys.stderr)
        return 2
    missing = _missing_plugin_command(sys.argv[1:] if argv is None else argv)
    if missing is not None:
        print(f"kite: {missing}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    verbose = args.verbose + getattr(args, "sub_verbose", 0)
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    try:
        configure_logging(os.environ.get("KITE_LOG_LEVEL", "").upper() or level, args.log_format)
    except ValueError as exc:  # a bad KITE_LOG_FORMAT
        print(f"kite: {exc}", file=sys.stderr)
        return 2
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except Exception as exc:
        return _report(args.command, exc)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command, on the event loop when it is a coroutine."""
    outcome = args.run(args)
    if inspect.isawaitable(outcome):
        awaitable = outcome

        async def finish() -> Any:
            return await awaitable

        outcome = anyio.run(finish, backend=os.environ.get("KITE_ANYIO_BACKEND", "asyncio"))
    return int(outcome or 0)


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (``kite showkey | head``): end quietly, like other
    commands killed by SIGPIPE (status 141), without Python's complaint at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, else ``exc`` itself."""
    # exception groups: the builtin one, or anyio's backport on Python 3.10
    inner = getattr(exc, "exceptions", None)
    while isinstance(inner, tuple) and len(inner) == 1:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def _report(command: str, exc: Exception) -> int:
    """One line for an error that ended ``command``; the exit code."""
    error = _single(exc)
    if isinstance(error, BrokenPipeError):
        return _reader_went_away()
    if isinstance(error, UsageError | ConfigError):
        return fail(command, error, 2)
    if isinstance(error, ListenError | KiteError | PluginError):
        return fail(command, error, 1)
    logger.debug("kite %s failed", command, exc_info=exc)
    name = type(error).__name__
    return fail(command, f"{name}: {error} (run with -vv for the traceback)", 1)
