"""The ``kite`` command line (the kitectl role).

Built-in commands: ``tell``, ``plugins``, ``demo``. Plugins add more through the
``kite_register_commands`` hook.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginError, get_registry
from kitecore.protocol.errors import KiteError

logger = logging.getLogger(__name__)


def parse_argument(text: str) -> Any:
    """A command-line argument as JSON (``4``, ``"x"``, ``[1,2]``), else as a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------- kite tell


def _configure_tell(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the kite's URL, e.g. http://127.0.0.1:6000/kite")
    parser.add_argument("method", help="the method to call, e.g. square")
    parser.add_argument("args", nargs="*", help="arguments, each JSON or a plain string")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the answer (default: the kite's 15s)",
    )
    parser.add_argument(
        "--transport", default=None, help="transport name (default: chosen from the URL)"
    )


async def _tell(args: argparse.Namespace) -> int:
    kite = Kite("kite-cli", "0.1.0", config=Config.from_env())
    values = [parse_argument(a) for a in args.args]
    timeout = kite.config.timeout if args.timeout is None else args.timeout
    try:
        async with kite.new_client(args.url, transport=args.transport) as client:
            result = await client.tell(args.method, *values, timeout=timeout)
    except KiteError as exc:
        print(f"kite tell: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad transport name or URL
        print(f"kite tell: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, default=repr))
    return 0


# ---------------------------------------------------------------- kite plugins


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation")


def _plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    data = {
        "plugins": registry.describe(),
        "transports": sorted(registry.transports),
        "authenticators": sorted(registry.authenticators),
        "storages": sorted(registry.storages),
        "pickers": sorted(registry.pickers),
        "commands": sorted(registry.commands),
    }
    print(json.dumps(data, indent=args.indent or None))
    return 0


# ---------------------------------------------------------------- kite demo


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--number", type=float, default=4, help="the number to square")


async def run_demo(number: float = 4, out: Any = None) -> int:
    """The seed's walk-through on free ports: first kite serves square, second calls it."""
    out = out or sys.stdout
    config = Config.from_env()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = True
    first = Kite("first", "1.0.0", config=config)

    @first.handle("square")
    async def square(r: Any) -> float:
        a = r.args.one(float)
        return a * a

    async with first:
        print(f"first kite {first.identity.path} serving on {first.url}", file=out)
        second = Kite("second", "1.0.0", config=Config.from_env())
        async with second.new_client(first.url) as client:
            result = await client.tell("square", _plain(number))
            print(f"square({_plain(number)}) = {_plain(result)}", file=out)
            pong = await client.tell("kite.ping")
            print(f"kite.ping = {pong}", file=out)
    return 0 if result == number * number and pong == "pong" else 1


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def _demo(args: argparse.Namespace) -> int:
    return await run_demo(args.number)


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kite", description="Kite for Python")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    builtins = {
        "tell": ("call a method on a kite and print the JSON result", _configure_tell, _tell),
        "plugins": ("list the loaded plugins as JSON", _configure_plugins, _plugins),
        "demo": ("run the first-kite/second-kite walk-through", _configure_demo, _demo),
    }
    for name, (help_text, configure, run) in builtins.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        configure(command_parser)
        command_parser.set_defaults(run=run)
    for name, command in sorted(get_registry().commands.items()):
        if name in builtins:
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
    logging.basicConfig(
        level=os.environ.get("KITE_LOG_LEVEL", "").upper() or level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    outcome = args.run(args)
    if inspect.isawaitable(outcome):

        async def _await() -> int:
            return await outcome

        backend = os.environ.get("KITE_ANYIO_BACKEND", "asyncio")
        try:
            outcome = anyio.run(_await, backend=backend)
        except KeyboardInterrupt:
            return 130
    return int(outcome or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
