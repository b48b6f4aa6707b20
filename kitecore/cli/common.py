"""What the commands share: argument checking, the CLI's own kite, and one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from kitecore.config import Config, parse_duration
from kitecore.kite import Kite
from kitecore.protocol.envelope import Authentication

#: What ``kite tell --help`` says about ARGS (the rule :func:`parse_argument` applies).
ARGUMENTS_HELP = (
    "arguments, each JSON (4, true, '[1,2]', '{\"a\": 1}', '\"text\"') or else a plain "
    'string (hello); one that starts with {, [ or " must be valid JSON, so quote it for '
    "the shell: '{\"a\": 1}'"
)


class UsageError(Exception):
    """The user gave the command something it cannot use; the message says what and how to
    fix it. ``kite`` prints it as one line and exits 2."""


def parse_argument(text: str, position: int = 1) -> Any:
    """A command-line argument as JSON (``4``, ``"x"``, ``[1,2]``), else as a plain string.

    Text that starts like a JSON object, array or string but does not parse is refused with
    :class:`UsageError` (the shell ate its quotes, most likely) rather than sent as a string.
    """
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[", '"'):
            reason = getattr(exc, "msg", str(exc))
            raise UsageError(
                f"argument {position} {text!r} is not valid JSON ({reason}); put JSON in single "
                f"quotes so the shell keeps its double quotes, e.g. '{{\"a\": 1}}', or send "
                f"text as a JSON string, e.g. '\"{{a: 1}}\"'"
            ) from None
        return text


def parse_arguments(texts: Sequence[str]) -> list[Any]:
    """:func:`parse_argument` of each of ``texts``, numbered from 1 in errors."""
    return [parse_argument(text, number) for number, text in enumerate(texts, 1)]


def check_kite_url(url: str, what: str = "kite URL") -> str:
    """``url`` if it can name a kite (a scheme, a host and a path such as ``/kite``), else a
    :class:`UsageError` that shows the URL that was probably meant."""
    text = url.strip()
    if "://" not in text:
        host_port, _, path = text.partition("/")
        guess = f"http://{host_port}/{path or 'kite'}"
        raise UsageError(f"{what} {url!r} has no scheme: did you mean {guess}?")
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError(f"{what} {url!r} has a bad port: expected a number up to 65535") from None
    if parts.scheme != "loopback" and not parts.hostname:
        raise UsageError(f"{what} {url!r} has no host, e.g. http://127.0.0.1:6000/kite")
    if parts.path in ("", "/"):
        raise UsageError(
            f"{what} {url!r} has no path: kites serve on /kite, "
            f"did you mean {parts.scheme}://{parts.netloc}/kite?"
        )
    return text


def kite_url_type(what: str) -> Any:
    """An argparse ``type=`` that checks a kite URL (or a comma-separated list of them)."""

    def check(text: str) -> str:
        try:
            for url in filter(None, text.split(",")):  # argparse passes a default of "" too
                check_kite_url(url, what)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = what  # argparse names the type in some messages
    return check


def seconds_type(text: str) -> float:
    """An argparse ``type=`` for ``--timeout``: seconds above zero (``3``, ``0.5``, ``2s``)."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a timeout: expected seconds above zero, like 3 or 2.5s"
        )
    return seconds


def cli_kite(config: Config | None = None) -> Kite:
    """The kite the command line speaks as (identity and kite.key from the environment)."""
    return Kite("kite-cli", "0.1.0", config=Config.from_env() if config is None else config)


def kite_key_auth(config: Config) -> Authentication | None:
    """kiteKey credentials when this machine has a kite.key, else none."""
    return Authentication("kiteKey", config.kite_key) if config.kite_key else None


def fail(command: str, message: object, code: int = 1) -> int:
    """Print ``kite COMMAND: message`` on stderr and return ``code``."""
    print(f"kite {command}: {message}", file=sys.stderr)
    return code


def refusal(exc: BaseException) -> OSError | None:
    """The connection error (refused, unreachable, unknown host) behind ``exc``, if any."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return current
        todo.extend(getattr(current, "exceptions", ()))  # exception groups
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def describe_dial_failure(url: str, exc: BaseException) -> str:
    """One line for a failed dial of ``url``: plain words for "connection refused"."""
    if refusal(exc) is not None:
        parts = urlsplit(url)
        return f"can't connect to {url}: connection refused (nothing listens on {parts.netloc})"
    return str(exc)


def describe_kontrol_failure(url: str, exc: BaseException) -> str:
    """One line for a failed call to Kontrol at ``url``: plain words for "connection refused"."""
    if refusal(exc) is not None:
        return f"can't connect to Kontrol at {url}: connection refused (is Kontrol running there?)"
    return str(exc)
