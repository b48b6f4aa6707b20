"""``python -m kitecore.kontrol``: run a Kontrol (``kite kontrol`` calls :func:`main`).

First run::

    python -m kitecore.kontrol --data-dir DIR --initial --username admin \\
        --kontrol-url http://kontrol.example.com:4000/kite

creates the key pair in DIR, writes Kontrol's own kite.key to ``$KITE_HOME/kite.key`` and exits.
Then::

    python -m kitecore.kontrol --data-dir DIR --storage memory:// --port 4000 \\
        --registration-secret S        # or KONTROL_REGISTRATION_SECRET, or --open-registration
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import anyio

from kitecore.config import Config
from kitecore.kontrol.limits import add_limit_options, limit_settings
from kitecore.kontrol.storage import StorageError

__all__ = ["build_parser", "main", "run"]

logger = logging.getLogger(__name__)

SECRET_ENV = "KONTROL_REGISTRATION_SECRET"
DEFAULT_PORT = 4000


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add Kontrol's options to ``parser`` (a new one if ``None``) and return it."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m kitecore.kontrol", description="Run Kite's discovery and token service."
        )
    parser.add_argument("--storage", default="memory://", help="storage URL (default memory://)")
    parser.add_argument("--ip", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 4000)")
    parser.add_argument("--data-dir", help="key pair directory (default $KITE_HOME/kontrol)")
    parser.add_argument("--username", help="Kontrol's username: the issuer of its keys")
    parser.add_argument("--environment", help="Kontrol's environment")
    parser.add_argument("--region", help="Kontrol's region")
    parser.add_argument("--kontrol-url", help="URL written into kite.keys (default: served URL)")
    parser.add_argument("--register-url", help="URL Kontrol registers itself with")
    parser.add_argument(
        "--initial",
        action="store_true",
        help="create the key pair and write Kontrol's own kite.key to $KITE_HOME, then exit",
    )
    parser.add_argument(
        "--rotate-key",
        action="store_true",
        help="retire the current key pair, start with a new one",
    )
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument(
        "--registration-secret",
        help=f"secret registerMachine callers must send (or ${SECRET_ENV})",
    )
    policy.add_argument(
        "--open-registration",
        action="store_true",
        help="anyone may registerMachine (demos only)",
    )
    parser.add_argument("--log-level", default=os.environ.get("KITE_LOG_LEVEL", "INFO"))
    add_limit_options(parser)
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = Config.from_env()
    config.ip = args.ip
    config.port = args.port
    for name in ("username", "environment", "region", "kontrol_url"):
        value = getattr(args, name)
        if value:
            setattr(config, name, value)
    return config


def _initial(args: argparse.Namespace, config: Config) -> int:
    from ._tokenlib import kite_auth_token
    from .keyfiles import KeyFiles
    from .server import default_data_dir

    if not args.username:
        print("--initial needs --username", file=sys.stderr)
        return 2
    files = KeyFiles(args.data_dir or default_data_dir())
    pair, created = files.load_or_create()
    kontrol_url = config.kontrol_url or f"http://127.0.0.1:{config.port}/kite"
    key = kite_auth_token.create_kite_key(
        username=args.username,
        issuer=args.username,
        kontrol_url=kontrol_url,
        public_key=pair.public,
        private_key=pair.private,
    )
    path = kite_auth_token.write_kite_key(key)
    state = "created" if created else "existing"
    print(f"{state} key pair {pair.id} in {files.data_dir}; kite.key written to {path}")
    return 0


async def _serve(args: argparse.Namespace, config: Config) -> None:
    from .machine import OpenPolicy, SecretPolicy
    from .server import Kontrol, default_data_dir
    from .settings import KontrolSettings

    secret = args.registration_secret or os.environ.get(SECRET_ENV, "")
    policy = OpenPolicy() if args.open_registration else SecretPolicy(secret) if secret else None
    if policy is None:
        logger.warning("no registration secret: registerMachine is refused to everyone")
    kontrol = Kontrol(
        storage=args.storage,
        data_dir=args.data_dir or default_data_dir(),
        config=config,
        machine_policy=policy,
        register_url=args.register_url,
        settings=KontrolSettings(**limit_settings(args)),
    )
    async with kontrol:
        if args.rotate_key:
            new = await kontrol.rotate_key()
            logger.info("now signing with key pair %s", new.id)
        print(f"Kontrol serving on {kontrol.url}", flush=True)
        await anyio.sleep_forever()


def run(args: argparse.Namespace) -> int:
    """Run Kontrol with parsed ``args`` (from :func:`build_parser`); returns the exit code.

    This is what ``kite kontrol`` calls after adding :func:`build_parser`'s options to its
    subparser.
    """
    config = _config(args)
    try:
        if args.initial:
            return _initial(args, config)
        backend = os.environ.get("KITE_ANYIO_BACKEND", "asyncio")
        anyio.run(_serve, args, config, backend=backend)
    except KeyboardInterrupt:
        return 0
    except (ImportError, OSError, ValueError, RuntimeError, StorageError) as exc:
        print(f"kontrol: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse command-line ``argv``, set up logging and :func:`run`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
