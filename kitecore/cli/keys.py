"""``kite register`` (get this machine's kite.key from Kontrol) and ``kite showkey``."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

import anyio.to_thread

from kitecore.cli.common import cli_kite, fail, kite_url_type
from kitecore.config import Config, kite_key_path, write_kite_key
from kitecore.discovery.claims import unverified_claims
from kitecore.discovery.machine import register_machine
from kitecore.protocol.errors import KiteError

SECRET_ENV = "KITE_REGISTRATION_SECRET"
SHOWN_CLAIMS = ("sub", "iss", "kontrolURL", "aud", "iat", "jti", "kontrolKey")


def configure_register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to",
        required=True,
        type=kite_url_type("Kontrol URL"),
        help="Kontrol's URL, e.g. http://host:4000/kite",
    )
    parser.add_argument("--username", required=True, help="the username to register")
    parser.add_argument(
        "--secret",
        default=None,
        help=f"Kontrol's registration secret (default: ${SECRET_ENV}, else asked for on a "
        "terminal; none for a Kontrol in open-registration mode)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait")


async def _secret(args: argparse.Namespace) -> str | None:
    if args.secret is not None:
        return args.secret or None
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    if sys.stdin.isatty():
        answer = await anyio.to_thread.run_sync(
            getpass.getpass, "Registration secret (empty for none): "
        )
        return answer or None
    return None


async def register(args: argparse.Namespace) -> int:
    config = Config.from_env()
    config.username = args.username
    kite = cli_kite(config)
    secret = await _secret(args)
    try:
        key = await register_machine(
            kite, args.to, username=args.username, secret=secret, timeout=args.timeout
        )
    except KiteError as exc:
        return fail("register", exc)
    path = write_kite_key(key)
    print(f"registered {args.username} with {args.to}; kite.key written to {path}")
    return 0


def configure_showkey(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default=None, help="the kite.key (default: $KITE_HOME)")


def showkey(args: argparse.Namespace) -> int:
    path = args.path or kite_key_path()
    try:
        token = open(path, encoding="utf-8").read().strip()
        claims = unverified_claims(token)
    except FileNotFoundError:
        return fail("showkey", f"no kite.key at {path}: run 'kite register' first")
    except (OSError, ValueError) as exc:
        return fail("showkey", f"cannot read the kite.key at {path}: {exc}")
    print(json.dumps({name: claims[name] for name in SHOWN_CLAIMS if name in claims}, indent=2))
    return 0


REGISTER = ("get this machine's kite.key from Kontrol", configure_register, register)
SHOWKEY = ("show the claims of this machine's kite.key", configure_showkey, showkey)
