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
from kitecore.discovery.keyfile import backup_kite_key, read_existing_key, replace_conflict
from kitecore.discovery.machine import (
    SECRET_ENV,
    SECRET_ENV_ALIASES,
    register_machine,
    registration_secret_from_env,
)
from kitecore.protocol.errors import KiteError

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
        help=f"Kontrol's registration secret (default: ${SECRET_ENV} or "
        f"${SECRET_ENV_ALIASES[0]}, else asked for on a terminal; none for a Kontrol in "
        "open-registration mode)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a kite.key of another user or Kontrol (the old one is kept as kite.key.bak)",
    )


def _has_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


async def _secret(args: argparse.Namespace) -> str | None:
    if args.secret is not None:
        return args.secret or None
    from_env = registration_secret_from_env()
    if from_env:
        return from_env
    if _has_terminal():
        try:
            answer = await anyio.to_thread.run_sync(
                getpass.getpass, "Registration secret (empty for none): "
            )
        except EOFError:
            return None
        return answer or None
    return None


def _refuse(path: os.PathLike[str], reason: str) -> int:
    return fail(
        "register",
        f"{path} {reason}: pass --force to replace it (the old file is kept as a backup), "
        "or set KITE_HOME to keep both",
    )


async def register(args: argparse.Namespace) -> int:
    config = Config.from_env()
    config.username = args.username
    kite = cli_kite(config)
    path = kite_key_path()
    existing = read_existing_key(path)
    if existing is not None and not args.force:
        reason = replace_conflict(existing, username=args.username)
        if reason:  # refused before asking Kontrol for anything
            return _refuse(path, reason)
    secret = await _secret(args)
    try:
        key = await register_machine(
            kite, args.to, username=args.username, secret=secret, timeout=args.timeout
        )
    except KiteError as exc:
        if secret is None and "no registration secret given" in str(exc):
            where = "" if _has_terminal() else " (no terminal to ask on)"
            return fail(
                "register",
                f"Kontrol wants a registration secret{where}: pass --secret S or set {SECRET_ENV}",
            )
        return fail("register", exc)
    if existing is not None:
        reason = replace_conflict(existing, username=args.username, new_key=key)
        if reason and not args.force:
            return _refuse(path, reason)
        if reason:
            backup = backup_kite_key(path)
            print(f"kept the old kite.key ({reason}) as {backup}")
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
