"""``kite kontrol``: run Kontrol (the options of ``python -m kite_kontrol``)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from kite_kontrol.__main__ import build_parser

    build_parser(parser)


def run(args: argparse.Namespace) -> int:
    from kite_kontrol.__main__ import run as run_kontrol

    return run_kontrol(args)


KONTROL = ("run Kontrol, the discovery and token service", configure, run)
