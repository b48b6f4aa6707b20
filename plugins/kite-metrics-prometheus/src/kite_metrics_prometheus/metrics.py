"""The kite metrics (:class:`KiteMetrics`) and how they attach to a kite.

Per call, through the core's observers (the cheap form of interceptors): server and client
call counters by kite, method, outcome and error type, latency histograms and calls in flight.
Per connection, through the kite's connect/disconnect hooks: open connections by transport.
Messages and their sizes are counted by the core's connections; they are read when the
registry is collected (a scrape), so they cost nothing per message here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kitecore import Client, Kite
from kitecore.interceptors import (
    ClientCall,
    ClientObserver,
    ServerCall,
    ServerObserver,
    error_type,
)

from .kontrol import KontrolMetrics

__all__ = ["LATENCY_BUCKETS", "KiteMetrics"]

#: Latency buckets in seconds: RPCs on one host take well under a millisecond.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: The ``le`` label values of the buckets.
_BOUNDS = [floatToGoString(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]


class KiteMetrics:
    """Prometheus metrics of one or more kites, registered on ``registry`` (default: the
    ``prometheus_client`` global registry).

    >>> metrics = KiteMetrics(CollectorRegistry())
    >>> metrics.install(kite)          # count its calls and connections
    >>> metrics.serve(kite)            # GET /metrics on the kite's own HTTP server

    A registry holds one ``KiteMetrics``; install it on as many kites as you like (the
    ``kite`` label tells them apart).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "kite"):
        self.registry = REGISTRY if registry is None else registry
        r = self.registry
        ns = namespace
        self._server = _CallCollector(
            f"{ns}_server",
            ("kite", "method"),
            "Calls served, by kite, method, outcome (ok/error) and wire error type",
            "Time to serve a call (authentication and handlers)",
            "Calls being served now",
        )
        self._client = _CallCollector(
            f"{ns}_client",
            ("kite", "target", "method"),
            "Calls made with tell, by kite, target kite name, method, outcome and error type",
            "Time from tell to its answer",
            "Calls made and not answered yet",
        )
        r.register(self._server)
        r.register(self._client)
        self.connections = Gauge(
            "connections_open",
            "Open connections (accepted and dialed), by kite and transport",
            ["kite", "transport"],
            namespace=ns,
            registry=r,
        )
        self._traffic = _TrafficCollector(ns)
        r.register(self._traffic)
        self._namespace = ns
        #: Kontrol's metrics, made (and registered) when a kite named ``kontrol`` is installed.
        self.kontrol: KontrolMetrics | None = None

    # ------------------------------------------------------------ attaching

    def install(self, kite: Kite) -> None:
        """Count ``kite``'s calls (both sides) and connections on these metrics."""
        kite.add_observer(server=self.server_observer(kite), client=self.client_observer)
        kite.on_connect(self._connected)
        kite.on_disconnect(self._disconnected)
        if kite.name == "kontrol":
            if self.kontrol is None:
                self.kontrol = KontrolMetrics(self.registry, namespace=self._namespace)
            self.kontrol.install(kite)

    def serve(self, kite: Kite, path: str = "/metrics") -> None:
        """Serve the registry in Prometheus' text format at ``GET path`` on ``kite``'s own
        HTTP server (beside ``/kite``)."""
        from .exposition import metrics_handler

        kite.handle_http(path, metrics_handler(self.registry), methods=["GET", "HEAD"])

    # ------------------------------------------------------------ observers

    def server_observer(self, kite: Kite) -> ServerObserver:
        """The observer (:mod:`kitecore.interceptors`) that counts and times the calls
        ``kite`` serves (its stats found by method name alone)."""
        return (_ServedBy(kite.name, self._server).started, _ended)

    @property
    def client_observer(self) -> ClientObserver:
        """The observer that counts and times the calls made with ``tell``."""
        return (self._client_started, _ended)

    def _client_started(self, call: ClientCall) -> tuple[_CallStats, float]:
        remote = call.client.remote_kite
        key = (call.kite.name, remote.name if remote is not None else "", call.method)
        stats = self._client.stats.get(key) or self._client.add(key)
        stats.in_flight += 1
        return stats, perf_counter()

    # ------------------------------------------------------------ connections

    def _connected(self, client: Client) -> None:
        connection = client.connection
        if connection is None:
            return
        self.connections.labels(client.kite.name, connection.peer.transport).inc()
        self._traffic.opened(client.kite.name, connection)

    def _disconnected(self, client: Client) -> None:
        connection = client.connection
        if connection is None:
            return
        self.connections.labels(client.kite.name, connection.peer.transport).dec()
        self._traffic.closed(client.kite.name, connection)
        if self.kontrol is not None and client.kite.name == "kontrol":
            self.kontrol.forget(client)


class _CallStats:
    """Counts of one label set, updated without locks: a kite runs on one event loop, and a
    scrape from another thread reads whole ints (the GIL makes each update atomic)."""

    __slots__ = ("buckets", "in_flight", "ok", "outcomes", "total")

    def __init__(self) -> None:
        self.in_flight = 0
        #: calls that succeeded (an int: the usual case costs one increment)
        self.ok = 0
        #: error type -> calls that failed with it
        self.outcomes: dict[str, int] = {}
        #: calls per latency bucket (not cumulative), the last one for +Inf
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


class _ServedBy:
    """The stats of the calls one kite serves, by method name."""

    __slots__ = ("_by_method", "_collector", "_kite")

    def __init__(self, kite: str, collector: _CallCollector) -> None:
        self._kite = kite
        self._collector = collector
        self._by_method: dict[str, _CallStats] = {}

    def started(self, call: ServerCall) -> tuple[_CallStats, float]:
        """The start of a served call: counted in flight; its stats and start time."""
        stats = self._by_method.get(call.method)
        if stats is None:
            stats = self._by_method[call.method] = self._collector.add((self._kite, call.method))
        stats.in_flight += 1
        return stats, perf_counter()


def _ended(call: object, state: tuple[_CallStats, float], error: BaseException | None) -> None:
    """The end of a call of either side: count it in its stats (``state``: from the start)."""
    stats, started = state
    elapsed = perf_counter() - started
    stats.in_flight -= 1
    stats.total += elapsed
    stats.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
    if error is None:
        stats.ok += 1
    else:
        kind = error_type(error)
        outcomes = stats.outcomes
        outcomes[kind] = outcomes.get(kind, 0) + 1


class _CallCollector(Collector):
    """The calls of one side (server or client): ``<prefix>_calls_total``,
    ``<prefix>_call_duration_seconds`` and ``<prefix>_calls_in_flight``, made from
    :class:`_CallStats` when the registry is collected."""

    def __init__(
        self,
        prefix: str,
        labels: tuple[str, ...],
        calls_help: str,
        latency_help: str,
        in_flight_help: str,
    ) -> None:
        self._prefix = prefix
        self._labels = list(labels)
        self._help = (calls_help, latency_help, in_flight_help)
        self.stats: dict[tuple[str, ...], _CallStats] = {}

    def add(self, key: tuple[str, ...]) -> _CallStats:
        return self.stats.setdefault(key, _CallStats())

    def collect(self) -> Iterator[Any]:
        calls_help, latency_help, in_flight_help = self._help
        calls = CounterMetricFamily(
            f"{self._prefix}_calls", calls_help, labels=[*self._labels, "outcome", "error_type"]
        )
        latency = HistogramMetricFamily(
            f"{self._prefix}_call_duration_seconds", latency_help, labels=self._labels
        )
        in_flight = GaugeMetricFamily(
            f"{self._prefix}_calls_in_flight", in_flight_help, labels=["kite"]
        )
        per_kite: dict[str, int] = {}
        for key, stats in sorted(self.stats.items()):
            if stats.ok:
                calls.add_metric([*key, "ok", ""], stats.ok)
            for kind, count in sorted(stats.outcomes.items()):
                calls.add_metric([*key, "error", kind], count)
            cumulative = 0
            buckets = []
            for bound, count in zip(_BOUNDS, list(stats.buckets), strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric(list(key), buckets, stats.total)
            per_kite[key[0]] = per_kite.get(key[0], 0) + stats.in_flight
        for kite, count in sorted(per_kite.items()):
            in_flight.add_metric([kite], count)
        yield calls
        yield latency
        yield in_flight

    def describe(self) -> Iterator[Any]:
        return iter(())


class _TrafficCollector(Collector):
    """Messages and message sizes in and out, read from the connections' own counters when
    the registry is collected: live connections are summed then, closed ones kept as totals."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._live: dict[Any, str] = {}  # connection -> kite name
        self._closed: dict[str, list[int]] = {}  # kite -> [msgs in, out, chars in, out]

    def opened(self, kite: str, connection: Any) -> None:
        self._live[connection] = kite

    def closed(self, kite: str, connection: Any) -> None:
        if self._live.pop(connection, None) is None:
            return
        totals = self._closed.setdefault(kite, [0, 0, 0, 0])
        for index, value in enumerate(_counts(connection)):
            totals[index] += value

    def collect(self) -> Iterator[CounterMetricFamily]:
        totals = {kite: list(values) for kite, values in self._closed.items()}
        for connection, kite in list(self._live.items()):
            sums = totals.setdefault(kite, [0, 0, 0, 0])
            for index, value in enumerate(_counts(connection)):
                sums[index] += value
        messages = CounterMetricFamily(
            f"{self._namespace}_messages",
            "dnode messages received (in) and sent (out), by kite",
            labels=["kite", "direction"],
        )
        sizes = CounterMetricFamily(
            f"{self._namespace}_message_bytes",
            "Size of the dnode messages received and sent (characters of JSON text: "
            "bytes for ASCII), by kite",
            labels=["kite", "direction"],
        )
        for kite, (msgs_in, msgs_out, chars_in, chars_out) in sorted(totals.items()):
            messages.add_metric([kite, "in"], msgs_in)
            messages.add_metric([kite, "out"], msgs_out)
            sizes.add_metric([kite, "in"], chars_in)
            sizes.add_metric([kite, "out"], chars_out)
        yield messages
        yield sizes

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())


def _counts(connection: Any) -> tuple[int, int, int, int]:
    return (
        connection.messages_in,
        connection.messages_out,
        connection.chars_in,
        connection.chars_out,
    )
