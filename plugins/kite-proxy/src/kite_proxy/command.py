"""``kite proxy`` and ``kite tunnelproxy``: run the proxies with Go's options."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from kitecore import Config
from kitecore.tls import add_tls_options, apply_tls_options

__all__ = [
    "PROXY_HELP",
    "TUNNEL_HELP",
    "configure_proxy",
    "configure_tunnel",
    "run_proxy",
    "run_tunnel",
]

PROXY_HELP = "run a reverse proxy for kites on private addresses"
TUNNEL_HELP = "run a tunnel proxy for kites with no reachable address"


def _common(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--ip", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    parser.add_argument("--public-host", default="", help="host name callers use (default: --ip)")
    parser.add_argument(
        "--public-port", type=int, default=0, help="port callers use (default: --port)"
    )
    parser.add_argument("--region", default="", help="region to register with Kontrol")
    parser.add_argument("--environment", default="", help="environment to register with Kontrol")
    parser.add_argument("--no-register", action="store_true", help="do not register with Kontrol")
    parser.add_argument(
        "--scheme",
        choices=("http", "https"),
        help="public scheme (default: https with --tls-cert, else http; give https when a "
        "TLS terminator in front of the proxy serves it)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    add_tls_options(parser)


def configure_proxy(parser: argparse.ArgumentParser) -> None:
    """Options of ``kite proxy`` (Go's ``reverseproxy``)."""
    _common(parser, 3999)


def configure_tunnel(parser: argparse.ArgumentParser) -> None:
    """Options of ``kite tunnelproxy`` (Go's ``tunnelproxy``)."""
    _common(parser, 4000)
    parser.add_argument(
        "--private-key", type=Path, help="PEM RSA key signing tunnel tokens (default: a new one)"
    )
    parser.add_argument(
        "--public-key", type=Path, help="PEM public key of --private-key (checked to match)"
    )


def _config(args: argparse.Namespace) -> Config:
    config = Config.from_env()
    config.ip = args.ip
    config.port = args.port
    if args.region:
        config.region = args.region
    if args.environment:
        config.environment = args.environment
    apply_tls_options(args, config)
    return config


async def _serve(proxy: Any, register: bool) -> None:
    async with proxy:
        print(f"{proxy.kite.name} serving on {proxy.url}", flush=True)
        if register and proxy.kite.config.kontrol_url:
            await proxy.kite.register_forever(proxy.url)
        await anyio.sleep_forever()


def _run(args: argparse.Namespace, proxy: Any) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    backend = os.environ.get("KITE_ANYIO_BACKEND", "asyncio")
    try:
        anyio.run(_serve, proxy, not args.no_register, backend=backend)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"kite {proxy.kite.name}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_proxy(args: argparse.Namespace) -> int:
    """Run the reverse proxy until interrupted."""
    from .reverse import ReverseProxy

    proxy = ReverseProxy(
        _config(args),
        public_host=args.public_host,
        public_port=args.public_port,
        scheme=args.scheme,
    )
    return _run(args, proxy)


def run_tunnel(args: argparse.Namespace) -> int:
    """Run the tunnel proxy until interrupted."""
    from .tokens import TunnelTokens
    from .tunnel import TunnelProxy

    private = args.private_key.read_text() if args.private_key else None
    if private is not None and args.public_key is not None:
        if TunnelTokens(private).public_key.strip() != args.public_key.read_text().strip():
            print("kite tunnelproxy: --public-key does not match --private-key", file=sys.stderr)
            return 2
    proxy = TunnelProxy(
        _config(args),
        public_host=args.public_host,
        public_port=args.public_port,
        scheme=args.scheme,
        private_key=private,
    )
    return _run(args, proxy)
