"""The cost of observing kites: ``square`` calls/s, plain vs metrics and tracing both on.

Set-ups, each its own server and client process, measured in alternating rounds:

- ``plain``: no plugin;
- ``observed``: kite-metrics-prometheus (``/metrics`` served by the server and scraped over
  HTTP after every round) and kite-tracing-otel (the SDK's ``TracerProvider`` with a
  ``BatchSpanProcessor``, as a deployment would use, or ``--processor simple``, and an
  exporter that drops the spans; every trace sampled unless ``--sample-ratio`` says
  otherwise), on both sides.

With ``--parts`` also ``metrics`` and ``tracing`` alone, and ``spans``: bare SDK spans (one
per call and side, no context carried), the share of the cost that is the SDK's own.
Workloads: ``seq`` (one call after another) and ``conc64`` (64 in flight). Prints the medians
and the ratios to plain, by wall clock and by CPU time (server + client CPU seconds per
round: steadier on a busy machine).

    python bench/observability.py [--calls 5000] [--repeat 7] [--sample-ratio 1.0]
        [--processor batch|simple] [--parts]
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _calls


def _plain(kite: Any, side: str) -> None:
    pass


def _metrics(kite: Any, side: str) -> None:
    from kite_metrics_prometheus import KiteMetrics
    from prometheus_client import CollectorRegistry

    metrics = KiteMetrics(CollectorRegistry())
    metrics.install(kite)
    metrics.serve(kite)


def _provider() -> Any:
    """The SDK's tracer provider the bench traces to (sampling and processor from the
    parent's options), with an exporter that drops the spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    ratio = float(os.environ.get("KITE_BENCH_SAMPLE_RATIO", "1"))
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    # batch: export runs on the processor's thread, off the call path (what to deploy with a
    # real exporter); simple: export inside span.end() (cheaper only for an exporter that drops)
    simple = os.environ.get("KITE_BENCH_PROCESSOR") == "simple"
    provider.add_span_processor(
        (SimpleSpanProcessor if simple else BatchSpanProcessor)(DropSpans())
    )
    return provider


def _tracing(kite: Any, side: str) -> None:
    from kite_tracing_otel import KiteTracing

    KiteTracing(tracer_provider=_provider()).install(kite)


def _spans(kite: Any, side: str) -> None:
    """The SDK's own share: one span per call and side, started and ended around the call
    with the plugin's attributes, no trace context carried (what no plugin can avoid)."""
    from opentelemetry.trace import SpanKind

    tracer = _provider().get_tracer("bench")
    attributes = {"rpc.system": "kite", "rpc.service": "square", "rpc.method": "square"}
    kind = SpanKind.SERVER if side == "server" else SpanKind.CLIENT

    async def span(call: Any, proceed: Any) -> Any:
        current = tracer.start_span("square/square", kind=kind, attributes=attributes)
        try:
            return await proceed()
        finally:
            current.end()

    kite.add_interceptor(**{side: span})


def _observed(kite: Any, side: str) -> None:
    _metrics(kite, side)
    _tracing(kite, side)


MODES = {
    "plain": (["websocket"], _plain),
    "metrics": (["websocket"], _metrics),
    "tracing": (["websocket"], _tracing),
    "observed": (["websocket"], _observed),
    "spans": (["websocket"], _spans),
}


def scrape(setup: _calls.Setup, url: str) -> None:
    if setup.mode not in ("observed", "metrics"):
        return
    metrics_url = url.replace("ws://", "http://").removesuffix("/kite") + "/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        body = answer.read().decode()
    assert "kite_server_calls_total" in body, body[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--sample-ratio",
        type=float,
        default=1.0,
        help="traces sampled (ParentBased(TraceIdRatioBased)); 1.0 records every span",
    )
    parser.add_argument(
        "--processor",
        choices=["batch", "simple"],
        default="batch",
        help="the span processor (BatchSpanProcessor or SimpleSpanProcessor)",
    )
    parser.add_argument(
        "--baseline-tree",
        help="a directory holding another kitecore, kite_tracing_otel and kite_metrics_prometheus"
        " (e.g. from git archive of an older commit): also measure `observed` on that code",
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also measure metrics alone, tracing alone and bare SDK spans",
    )
    args = parser.parse_args()
    os.environ["KITE_BENCH_SAMPLE_RATIO"] = str(args.sample_ratio)  # for the child processes
    os.environ["KITE_BENCH_PROCESSOR"] = args.processor
    setups = [_calls.Setup("plain", "plain"), _calls.Setup("observed", "observed")]
    ratios = [("observed", "plain")]
    if args.baseline_tree:
        tree = os.path.abspath(args.baseline_tree)
        setups.append(_calls.Setup("observed@base", "observed", tree))
        ratios.append(("observed@base", "plain"))
    if args.parts:
        setups += [
            _calls.Setup("metrics", "metrics"),
            _calls.Setup("tracing", "tracing"),
            _calls.Setup("spans", "spans"),
        ]
        ratios += [("metrics", "plain"), ("tracing", "plain"), ("spans", "plain")]
    workloads = [("seq", args.calls), ("conc64", args.calls * 2)]
    cpus = _calls.run(__file__, setups, workloads, args.repeat, scrape)
    print(
        f"tracing: ParentBased(TraceIdRatioBased({args.sample_ratio})), "
        f"{args.processor} span processor, spans dropped"
    )
    _calls.report(setups, workloads, ratios, args.repeat, cpus)


if __name__ == "__main__":
    if not _calls.child_main(MODES):
        main()
