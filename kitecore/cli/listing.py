"""``kite plugins``: what is loaded, from which distribution, with which hooks."""

from __future__ import annotations

import argparse
import json

from kitecore.plugins import get_registry


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation")


def plugins(args: argparse.Namespace) -> int:
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


PLUGINS = ("list the loaded plugins as JSON", configure, plugins)
