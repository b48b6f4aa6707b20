"""``kite tell`` (call a method) and ``kite query`` (ask Kontrol which kites there are)."""

from __future__ import annotations

import argparse
import json

from kitecore.cli.common import cli_kite, fail, kite_key_auth, parse_argument
from kitecore.discovery.messages import NoKitesError
from kitecore.plugins import PluginError
from kitecore.protocol.errors import KiteError
from kitecore.protocol.identity import Query

QUERY_FIELDS = ("username", "environment", "name", "version", "region", "hostname", "id")


def configure_tell(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "kite tell [options] URL METHOD [ARGS ...]\n"
        "       kite tell [options] --query PATH [--picker NAME] METHOD [ARGS ...]"
    )
    parser.add_argument("url", help="the kite's URL, e.g. http://127.0.0.1:6000/kite")
    parser.add_argument("method", nargs="?", help="the method to call, e.g. square")
    parser.add_argument("args", nargs="*", help="arguments, each JSON or a plain string")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait (default: 15, KITE_TIMEOUT)"
    )
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
        help="with --query: how to choose among the matching kites (default: round_robin)",
    )


async def tell(args: argparse.Namespace) -> int:
    if args.query is not None:
        return await tell_query(args)
    if args.picker is not None:
        return fail("tell", "--picker needs --query", 2)
    if args.method is None:
        return fail("tell", "missing METHOD: kite tell URL METHOD [ARGS ...]", 2)
    kite = cli_kite()
    values = [parse_argument(a) for a in args.args]
    timeout = kite.config.timeout if args.timeout is None else args.timeout
    auth = None if args.no_auth else kite_key_auth(kite.config)
    try:
        async with kite.new_client(args.url, transport=args.transport, auth=auth) as client:
            result = await client.tell(args.method, *values, timeout=timeout)
    except KiteError as exc:
        return fail("tell", exc)
    except ValueError as exc:  # a bad transport name or URL
        return fail("tell", exc, 2)
    print(json.dumps(result, ensure_ascii=False, default=repr))
    return 0


async def tell_query(args: argparse.Namespace) -> int:
    """``kite tell --query PATH METHOD ARGS``: the call goes through a pool."""
    kite = cli_kite()
    words = [args.url, *([] if args.method is None else [args.method]), *args.args]
    method, values = words[0], [parse_argument(a) for a in words[1:]]
    timeout = kite.config.timeout if args.timeout is None else args.timeout
    if not kite.config.kite_key:
        return fail("tell", "--query needs a kite.key: run 'kite register' first")
    try:
        query = Query.from_path(args.query)
        pool = kite.pool(query, picker=args.picker or "round_robin")
    except (KiteError, PluginError) as exc:  # a bad query path or an unknown picker
        return fail("tell", exc, 2)
    try:
        async with kite.kontrol_client, pool:
            result = await pool.tell(method, *values, timeout=timeout)
    except KiteError as exc:
        return fail("tell", exc)
    except ValueError as exc:  # e.g. a kite.key without a Kontrol URL
        return fail("tell", exc, 2)
    print(json.dumps(result, ensure_ascii=False, default=repr))
    return 0


def configure_query(parser: argparse.ArgumentParser) -> None:
    for field in QUERY_FIELDS:
        parser.add_argument(f"--{field}", default="", help=f"match the kite's {field}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument("--kontrol-url", default="", help="Kontrol (default: from kite.key)")


async def query(args: argparse.Namespace) -> int:
    kite = cli_kite()
    if args.kontrol_url:
        kite.config.kontrol_url = args.kontrol_url
    if not kite.config.kite_key:
        return fail("query", "no kite.key: run 'kite register' first (or set KITE_HOME)")
    fields = {name: getattr(args, name) for name in QUERY_FIELDS if getattr(args, name)}
    try:
        async with kite.kontrol_client:
            found = await kite.kontrol_client.get_kites(Query(**fields))
    except NoKitesError:
        found = []
    except KiteError as exc:
        return fail("query", exc)
    kites = [(client.remote_kite, client.url) for client in found]
    if args.json:
        print(json.dumps([{"kite": k.to_wire() if k else None, "url": u} for k, u in kites]))
    else:
        for number, (identity, url) in enumerate(kites, 1):
            print(f"{number}  {identity.path if identity else '?'}  {url}")
    return 0


TELL = ("call a method on a kite and print the JSON result", configure_tell, tell)
QUERY = ("list the kites Kontrol knows that match a query", configure_query, query)
