"""Kontrol's own metrics, read from the calls Kontrol serves (no change to Kontrol needed).

Everything is observed at the wire level on the kite named ``kontrol``, so it works with
any Kontrol that speaks the protocol (protocol.md §7, §15):

- ``register`` answers: registrations by outcome; a kite registered over RPC stays
  registered while its connection lives, which gives the registered-kites gauge (per
  Kontrol instance: sum over instances that share a storage);
- ``getKites`` answers: calls, kites returned and tokens issued with them;
- ``getToken`` answers: tokens issued;
- watches: a ``getKites`` with a ``watchHandler``/``watchCallback`` function whose answer
  carries a ``watcherID`` opens one, ``cancelWatcher`` or the connection's end closes it;
- storage errors: Kontrol answers a failed storage operation with an error whose message
  starts with ``internal error`` (its HTTP endpoints map the same errors to 500).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from kitecore import Client, Kite
from kitecore.interceptors import Proceed, ServerCall

__all__ = ["KontrolMetrics"]

_WATCH_FIELDS = ("watchHandler", "watchCallback")


class KontrolMetrics:
    """Counters and gauges of Kontrol, fed by :meth:`interceptor`."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "kite") -> None:
        ns = f"{namespace}_kontrol"
        self.registrations = Counter(
            "registrations",
            "register calls answered, by outcome (ok/error)",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.registered_kites = Gauge(
            "registered_kites",
            "Kites registered over RPC with this Kontrol whose connection is open",
            namespace=ns,
            registry=registry,
        )
        self.get_kites = Counter(
            "get_kites",
            "getKites calls answered, by outcome (ok/error)",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.kites_returned = Counter(
            "kites_returned",
            "Kites listed in getKites answers",
            namespace=ns,
            registry=registry,
        )
        self.tokens = Counter(
            "tokens_issued",
            "Tokens handed out by getToken and in getKites answers",
            namespace=ns,
            registry=registry,
        )
        self.watchers = Gauge(
            "watchers",
            "Open getKites watches",
            namespace=ns,
            registry=registry,
        )
        self.storage_errors = Counter(
            "storage_errors",
            "Calls that failed on a storage error, by method",
            ["method"],
            namespace=ns,
            registry=registry,
        )
        self._registered: dict[Client, int] = {}
        self._watches: dict[Client, set[Any]] = {}

    def install(self, kite: Kite) -> None:
        """Observe the calls Kontrol's ``kite`` serves."""
        kite.add_interceptor(server=self.interceptor)

    async def interceptor(self, call: ServerCall, proceed: Proceed) -> Any:
        method = call.method
        try:
            result = await proceed()
        except Exception as exc:
            message = getattr(exc, "message", "")
            if isinstance(message, str) and message.startswith("internal error"):
                self.storage_errors.labels(method).inc()
            if method == "register":
                self.registrations.labels("error").inc()
            elif method == "getKites":
                self.get_kites.labels("error").inc()
            raise
        client = call.request.client
        if method == "register":
            self.registrations.labels("ok").inc()
            self._registered[client] = self._registered.get(client, 0) + 1
            self.registered_kites.inc()
        elif method == "getKites":
            self.get_kites.labels("ok").inc()
            self._got_kites(call, client, result)
        elif method == "getToken":
            self.tokens.inc()
        elif method == "cancelWatcher":
            watches = self._watches.get(client)
            args = call.request.args
            if watches and len(args) and _hashable(args[0]) in watches:
                watches.discard(_hashable(args[0]))
                self.watchers.dec()
        return result

    def _got_kites(self, call: ServerCall, client: Client, result: Any) -> None:
        if not isinstance(result, dict):
            return
        kites = result.get("kites")
        if isinstance(kites, list):
            self.kites_returned.inc(len(kites))
            self.tokens.inc(sum(1 for k in kites if isinstance(k, dict) and k.get("token")))
        watcher = result.get("watcherID")
        args = call.request.args
        if watcher is None or not len(args) or not isinstance(args[0], dict):
            return
        if any(callable(args[0].get(field)) for field in _WATCH_FIELDS):
            self._watches.setdefault(client, set()).add(_hashable(watcher))
            self.watchers.inc()

    def forget(self, client: Client) -> None:
        """``client``'s connection ended: its registrations and watches end with it."""
        registered = self._registered.pop(client, 0)
        if registered:
            self.registered_kites.dec(registered)
        watches = self._watches.pop(client, None)
        if watches:
            self.watchers.dec(len(watches))


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else repr(value)
