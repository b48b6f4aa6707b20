"""Log lines with the call they are about: request id, method and peer.

While a kite serves a call, :data:`current_request` holds its :class:`~kitecore.Request`
(a context variable: the handler, its middleware and every task it starts see it). The
:class:`CallContextFilter` copies from it, onto each log record made meanwhile:

- ``request_id``: the id the caller sees at the end of an error's text (``... (5f04ab12...)``)
  and that ``GenericError.id`` carries;
- ``rpc_method``: the method's name;
- ``peer``: the caller's address (``host:port``) and ``caller``: its username.

Outside a call the four are empty strings. Add the filter to your log handlers (the ``kite``
command does) and use the fields in a format, or use :class:`TextFormatter` /
:class:`JSONFormatter`, which show them only when they are set. :func:`configure_logging` sets
up the root logger with either; ``kite --log-format json`` (or ``KITE_LOG_FORMAT=json``) uses it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitecore.request import Request

__all__ = [
    "FORMAT_ENV",
    "CallContextFilter",
    "JSONFormatter",
    "TextFormatter",
    "configure_logging",
    "current_request",
]

#: The environment variable naming the log format of ``kite`` commands (``text``/``json``).
FORMAT_ENV = "KITE_LOG_FORMAT"

#: The call being served in this context (``None`` outside one).
current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "kite_current_request", default=None
)

_FIELDS = ("request_id", "rpc_method", "peer", "caller")


class CallContextFilter(logging.Filter):
    """Adds ``request_id``, ``rpc_method``, ``peer`` and ``caller`` to every record (empty
    outside a call). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request.get()
        if request is None:
            for name in _FIELDS:
                if not hasattr(record, name):
                    setattr(record, name, "")
            return True
        connection = request.client.connection
        record.request_id = request.id
        record.rpc_method = request.method
        record.peer = connection.peer.remote_address if connection is not None else ""
        record.caller = request.username
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` plus ``[request=... method=... peer=...]`` in a call."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", "")
        if not request_id:
            return text
        context = (
            f" [request={request_id} method={getattr(record, 'rpc_method', '')} "
            f"peer={getattr(record, 'peer', '') or '?'}]"
        )
        head, newline, rest = text.partition("\n")  # after the message, before a traceback
        return head + context + newline + rest


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the call's
    ``request_id``/``method``/``peer``/``caller`` when in a call, and ``exc_info`` (the
    formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
            entry["method"] = getattr(record, "rpc_method", "")
            entry["peer"] = getattr(record, "peer", "")
            entry["caller"] = getattr(record, "caller", "")
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    level: int | str = logging.WARNING,
    log_format: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as ``text`` or ``json`` lines
    (``log_format`` default: ``$KITE_LOG_FORMAT``, else ``text``), with the call context.

    Replaces handlers an earlier call installed; returns the handler. ``ValueError`` for an
    unknown format.
    """
    chosen = (log_format or os.environ.get(FORMAT_ENV, "") or "text").strip().lower()
    if chosen not in ("text", "json"):
        raise ValueError(f"unknown log format {chosen!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JSONFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(CallContextFilter())
    handler.set_name("kite")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "kite":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
