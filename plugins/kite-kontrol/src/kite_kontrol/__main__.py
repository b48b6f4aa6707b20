"""``python -m kite_kontrol``: run a Kontrol (``kite kontrol`` calls :func:`main`).

First run::

    python -m kite_kontrol --data-dir DIR --initial --username admin \\
        --kontrol-url http://kontrol.example.com:4000/kite

creates the key pair and Kontrol's identity (its username) in DIR, writes Kontrol's own kite.key
to ``$KITE_HOME/kite.key`` and exits. Kontrol's identity always comes from DIR, never from the
kite.key in ``$KITE_HOME`` (a user's, once ``kite register`` ran there).
Then::

    python -m kite_kontrol --data-dir DIR --storage memory:// --port 4000 \\
        --registration-secret S        # or KITE_REGISTRATION_SECRET, or --open-registration
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import anyio

from kitecore.config import Config
from kitecore.discovery.machine import SECRET_ENV, SECRET_ENV_ALIASES, registration_secret_from_env
from kitecore.storage import StorageError
from kitecore.tls import add_tls_options, apply_tls_options

from .identity import kontrol_config
from .limits import add_limit_options, limit_settings

__all__ = ["build_parser", "main", "run"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 4000


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add Kontrol's options to ``parser`` (a new one if ``None``) and return it."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m kite_kontrol", description="Run Kite's discovery and token service."
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
        help=f"secret registerMachine callers must send (or ${SECRET_ENV}; "
        f"${SECRET_ENV_ALIASES[0]} is accepted too)",
    )
    policy.add_argument(
        "--open-registration",
        action="store_true",
        help="anyone may registerMachine (demos only)",
    )
    add_tls_options(parser)
    parser.add_argument("--log-level", default=os.environ.get("KITE_LOG_LEVEL", "INFO"))
    add_limit_options(parser)
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = kontrol_config()  # not the kite.key in $KITE_HOME: that is a user's identity
    config.ip = args.ip
    config.port = args.port
    for name in ("username", "environment", "region", "kontrol_url"):
        value = getattr(args, name)
        if value:
            setattr(config, name, value)
    apply_tls_options(args, config)
    return config


def _initial(args: argparse.Namespace, config: Config) -> int:
    from ._tokenlib import kite_auth_token
    from .identity import IdentityFile
    from .keyfiles import KeyFiles
    from .server import default_data_dir

    if not args.username:
        print("--initial needs --username", file=sys.stderr)
        return 2
    files = KeyFiles(args.data_dir or default_data_dir())
    has_keys = files.private_path.exists()
    IdentityFile(files.data_dir).resolve(args.username, has_keys=has_keys)
    pair, created = files.load_or_create()
    scheme = "https" if config.tls_cert_file else "http"
    kontrol_url = config.kontrol_url or f"{scheme}://127.0.0.1:{config.port}/kite"
    key = kite_auth_token.create_kite_key(
        username=args.username,
        issuer=args.username,
        kontrol_url=kontrol_url,
        public_key=pair.public,
        private_key=pair.private,
    )
    _keep_someone_elses_kite_key(args.username, key)
    path = kite_auth_token.write_kite_key(key)
    state = "created" if created else "existing"
    print(f"{state} key pair {pair.id} in {files.data_dir}; kite.key written to {path}")
    return 0


def _keep_someone_elses_kite_key(username: str, key: str) -> None:
    """Before ``--initial`` writes Kontrol's kite.key: a kite.key of a user (or of another
    Kontrol) already in ``$KITE_HOME`` is moved to a backup, and the user is told where."""
    from kitecore.config import kite_key_path
    from kitecore.discovery.keyfile import backup_kite_key, read_existing_key, replace_conflict

    path = kite_key_path()
    existing = read_existing_key(path)
    if existing is None:
        return
    reason = replace_conflict(existing, username=username, new_key=key)
    if reason:
        print(f"kept the old kite.key ({reason}) as {backup_kite_key(path)}")


async def _serve(args: argparse.Namespace, config: Config) -> None:
    from kitecore.kite import wait_for_signal_then

    from .machine import OpenPolicy, SecretPolicy
    from .server import Kontrol, default_data_dir
    from .settings import KontrolSettings

    secret = args.registration_secret or registration_secret_from_env()
    policy = OpenPolicy() if args.open_registration else SecretPolicy(secret) if secret else None
    if args.open_registration:
        logger.warning(
            "open registration: anyone may get a kite.key for any username (demos only; "
            "use --registration-secret or $%s otherwise)",
            SECRET_ENV,
        )
    elif policy is None:
        logger.warning(
            "no registration secret ($%s or --registration-secret): registerMachine is "
            "refused to everyone",
            SECRET_ENV,
        )
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
        # SIGTERM and SIGINT: stop accepting, let calls in flight finish (bounded by
        # KITE_SHUTDOWN_TIMEOUT), close with close frames; a second signal forces the exit
        await wait_for_signal_then(kontrol.kite.shutdown)


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
