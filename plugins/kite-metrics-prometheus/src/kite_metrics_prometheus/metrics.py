"""The kite metrics (:class:`KiteMetrics`) and how they attach to a kite.

Per call, through the core's interceptors: server and client call counters by kite, method,
outcome and error type, latency histograms and calls in flight. Per connection, through the
kite's connect/disconnect hooks: open connections by transport. Messages and their sizes are
counted by the core's connections; they are read when the registry is collected (a scrape),
so they cost nothing per message here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from kitecore import Client, Kite
from kitecore.interceptors import ClientCall, Proceed, ServerCall, error_type

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

_OK = "ok"
_ERROR = "error"


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
        self.server_calls = Counter(
            "server_calls",
            "Calls served, by kite, method, outcome (ok/error) and wire error type",
            ["kite", "method", "outcome", "error_type"],
            namespace=ns,
            registry=r,
        )
        self.server_latency = Histogram(
            "server_call_duration_seconds",
            "Time to serve a call (authentication and handlers)",
            ["kite", "method"],
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.server_in_flight = Gauge(
            "server_calls_in_flight",
            "Calls being served now",
            ["kite"],
            namespace=ns,
            registry=r,
        )
        self.client_calls = Counter(
            "client_calls",
            "Calls made with tell, by kite, target kite name, method, outcome and error type",
            ["kite", "target", "method", "outcome", "error_type"],
            namespace=ns,
            registry=r,
        )
        self.client_latency = Histogram(
            "client_call_duration_seconds",
            "Time from tell to its answer",
            ["kite", "target", "method"],
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.client_in_flight = Gauge(
            "client_calls_in_flight",
            "Calls made and not answered yet",
            ["kite"],
            namespace=ns,
            registry=r,
        )
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
        # label children, looked up once per label set (labels() is the costly part)
        self._children: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------ attaching

    def install(self, kite: Kite) -> None:
        """Count ``kite``'s calls (both sides) and connections on these metrics."""
        kite.add_interceptor(server=self.server_interceptor, client=self.client_interceptor)
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

    # ------------------------------------------------------------ interceptors

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def server_interceptor(self, call: ServerCall, proceed: Proceed) -> Any:
        """Count and time one served call."""
        name = call.kite.name
        in_flight = self._child(self.server_in_flight, name)
        in_flight.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            method = call.method
            self._child(self.server_latency, name, method).observe(elapsed)
            if error is None:
                self._child(self.server_calls, name, method, _OK, "").inc()
            else:
                kind = error_type(error)
                self._child(self.server_calls, name, method, _ERROR, kind).inc()

    async def client_interceptor(self, call: ClientCall, proceed: Proceed) -> Any:
        """Count and time one call made with ``tell``."""
        name = call.kite.name
        remote = call.client.remote_kite
        target = remote.name if remote is not None else ""
        in_flight = self._child(self.client_in_flight, name)
        in_flight.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            method = call.method
            self._child(self.client_latency, name, target, method).observe(elapsed)
            if error is None:
                self._child(self.client_calls, name, target, method, _OK, "").inc()
            else:
                kind = error_type(error)
                self._child(self.client_calls, name, target, method, _ERROR, kind).inc()

    # ------------------------------------------------------------ connections

    def _connected(self, client: Client) -> None:
        connection = client.connection
        if connection is None:
            return
        self._child(self.connections, client.kite.name, connection.peer.transport).inc()
        self._traffic.opened(client.kite.name, connection)

    def _disconnected(self, client: Client) -> None:
        connection = client.connection
        if connection is None:
            return
        self._child(self.connections, client.kite.name, connection.peer.transport).dec()
        self._traffic.closed(client.kite.name, connection)
        if self.kontrol is not None and client.kite.name == "kontrol":
            self.kontrol.forget(client)


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
