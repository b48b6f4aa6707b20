"""``kite tell`` (call a method) and ``kite query`` (ask Kontrol which kites there are).

Both bound the whole command by one deadline, ``--timeout`` (default ``config.timeout``,
``KITE_TIMEOUT``): reaching Kontrol, dialing the kite and waiting for the answer together take
at most that long. A Kontrol that refuses the connection is reported at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from kitecore.cli.common import (
    ARGUMENTS_HELP,
    check_kite_url,
    cli_kite,
    describe_dial_failure,
    describe_kontrol_failure,
    fail,
    kite_key_auth,
    kite_url_type,
    parse_arguments,
    seconds_type,
)
from kitecore.client import DialError
from kitecore.discovery.messages import NoKitesError
from kitecore.kite import Kite
from kitecore.plugins import PluginError
from kitecore.protocol.errors import KiteError
from kitecore.protocol.identity import Query

QUERY_FIELDS = ("username", "environment", "name", "version", "region", "hostname", "id")

TIMEOUT_HELP = (
    "seconds the whole command may take, connecting included "
    "(default: 15, or KITE_TIMEOUT; '2.5' and '2500ms' work)"
)


def configure_tell(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "kite tell [options] URL METHOD [ARGS ...]\n"
        "       kite tell [options] --query PATH [--picker NAME] METHOD [ARGS ...]"
    )
    parser.add_argument("url", help="the kite's URL, e.g. http://127.0.0.1:6000/kite")
    parser.add_argument("method", nargs="?", help="the method to call, e.g. square")
    parser.add_argument("args", nargs="*", help=ARGUMENTS_HELP)
    parser.add_argument("--timeout", type=seconds_type, default=None, help=TIMEOUT_HELP)
    parser.add_argument("--transport", default=None, help="transport (default: from the URL)")
    parser.add_argument("--no-auth", action="store_true", help="don't send this machine's kite.key")
    parser.add_argument(
        "--query",
        default=None,
        metavar="PATH",
        help="instead of a URL: call one kite matching username/environment/name[/version] "
        "that Kontrol knows (needs a kite.key)",
    )
    parser.add_argument(
        "--picker",
        default=None,
        help="with --query: how to choose among the matching kites (default: round_robin, "
        "built in; kite-pickers adds fastest and least_latency)",
    )


def _print_result(result: Any) -> None:
    print(json.dumps(result, ensure_ascii=False, default=repr))


async def tell(args: argparse.Namespace) -> int:
    if args.query is not None:
        return await tell_query(args)
    if args.picker is not None:
        return fail("tell", "--picker needs --query", 2)
    if args.method is None:
        return fail("tell", "missing METHOD: kite tell URL METHOD [ARGS ...]", 2)
    url = check_kite_url(args.url)
    values = parse_arguments(args.args)
    kite = cli_kite()
    timeout = _deadline(kite, args.timeout)
    auth = None if args.no_auth else kite_key_auth(kite.config)
    step = f"connecting to {url}"
    try:
        with anyio.fail_after(timeout):
            async with kite.new_client(url, transport=args.transport, auth=auth) as client:
                step = f"waiting for {args.method}'s answer from {url}"
                result = await client.tell(args.method, *values, timeout=None)
    except TimeoutError:
        return fail("tell", f"timed out after {timeout:g}s {step}")
    except DialError as exc:
        return fail("tell", describe_dial_failure(url, exc))
    except KiteError as exc:
        return fail("tell", exc)
    except ValueError as exc:  # a bad transport name or URL
        return fail("tell", exc, 2)
    _print_result(result)
    return 0


def _deadline(kite: Kite, timeout: float | None) -> float:
    """The command's deadline in seconds; also the bound of every step inside it, so that
    the command's own deadline is what ends a silent peer (with a message naming the step)."""
    deadline = kite.config.timeout if timeout is None else timeout
    kite.config.timeout = deadline
    kite.config.handshake_timeout = deadline
    return deadline


async def tell_query(args: argparse.Namespace) -> int:
    """``kite tell --query PATH METHOD ARGS``: the call goes through a pool."""
    kite = cli_kite()
    words = [args.url, *([] if args.method is None else [args.method]), *args.args]
    method, values = words[0], parse_arguments(words[1:])
    timeout = _deadline(kite, args.timeout)
    if not kite.config.kite_key:
        return fail("tell", "--query needs a kite.key: run 'kite register' first")
    try:
        query = Query.from_path(args.query)
        pool = kite.pool(query, picker=args.picker or "round_robin")
    except (KiteError, PluginError) as exc:  # a bad query path or an unknown picker
        return fail("tell", exc, 2)
    asking_kontrol = True
    step = f"asking Kontrol at {kite.config.kontrol_url} for {args.query}"
    try:
        with anyio.fail_after(timeout):
            async with kite.kontrol_client, pool:
                asking_kontrol = False
                step = f"calling {method} on a kite matching {args.query}"
                result = await pool.tell(method, *values, timeout=None)
    except TimeoutError:
        return fail("tell", f"timed out after {timeout:g}s {step}")
    except KiteError as exc:
        if asking_kontrol:
            return fail("tell", describe_kontrol_failure(kite.config.kontrol_url, exc))
        return fail("tell", exc)
    except ValueError as exc:  # e.g. a kite.key without a Kontrol URL
        return fail("tell", exc, 2)
    _print_result(result)
    return 0


def configure_query(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Prints one line per kite: number, path, URL. When no kite matches, it says so in one "
        "line on stderr and exits 0 (with --json it prints [])."
    )
    for field in QUERY_FIELDS:
        parser.add_argument(f"--{field}", default="", help=f"match the kite's {field}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument(
        "--kontrol-url",
        type=kite_url_type("Kontrol URL"),
        default="",
        help="Kontrol, e.g. http://127.0.0.1:4000/kite (default: from kite.key)",
    )
    parser.add_argument("--timeout", type=seconds_type, default=None, help=TIMEOUT_HELP)


async def query(args: argparse.Namespace) -> int:
    kite = cli_kite()
    if args.kontrol_url:
        kite.config.kontrol_url = args.kontrol_url
    if not kite.config.kite_key:
        return fail("query", "no kite.key: run 'kite register' first (or set KITE_HOME)")
    timeout = _deadline(kite, args.timeout)
    fields = {name: getattr(args, name) for name in QUERY_FIELDS if getattr(args, name)}
    try:
        with anyio.fail_after(timeout):
            async with kite.kontrol_client:
                found = await kite.kontrol_client.get_kites(Query(**fields))
    except NoKitesError:
        found = []
    except TimeoutError:
        return fail("query", f"Kontrol at {kite.config.kontrol_url} did not answer in {timeout:g}s")
    except KiteError as exc:
        return fail("query", describe_kontrol_failure(kite.config.kontrol_url, exc))
    except ValueError as exc:  # e.g. a kite.key without a Kontrol URL
        return fail("query", exc, 2)
    kites = [(client.remote_kite, client.url) for client in found]
    if args.json:
        print(json.dumps([{"kite": k.to_wire() if k else None, "url": u} for k, u in kites]))
    elif not kites:
        wanted = " ".join(f"{name}={value}" for name, value in fields.items()) or "(any)"
        print(f"no kites match {wanted} at {kite.config.kontrol_url}", file=sys.stderr)
    else:
        for number, (identity, url) in enumerate(kites, 1):
            print(f"{number}  {identity.path if identity else '?'}  {url}")
    return 0


TELL = ("call a method on a kite and print the JSON result", configure_tell, tell)
QUERY = ("list the kites Kontrol knows that match a query", configure_query, query)
