"""``kite kontrol``: run Kontrol (the options of ``python -m kite_kontrol``)."""

from __future__ import annotations

import argparse

from kite_kontrol.__main__ import build_parser
from kite_kontrol.__main__ import run as run_kontrol

__all__ = ["HELP", "configure", "run"]

HELP = "run Kontrol, the discovery and token service"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add Kontrol's options to ``kite kontrol``'s subparser."""
    build_parser(parser)


def run(args: argparse.Namespace) -> int:
    """Run Kontrol with the parsed options; returns the exit code."""
    return run_kontrol(args)
