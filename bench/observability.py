"""The cost of observing kites: ``square`` calls/s, plain vs metrics and tracing both on.

Set-ups, each its own server and client process, measured in alternating rounds:

- ``plain``: no plugin;
- ``observed``: kite-metrics-prometheus (``/metrics`` served by the server and scraped over
  HTTP after every round) and kite-tracing-otel (the SDK's ``TracerProvider`` with a
  ``SimpleSpanProcessor`` and an exporter that drops the spans; every trace sampled unless
  ``--sample-ratio`` says otherwise), on both sides.

Workloads: ``seq`` (one call after another) and ``conc64`` (64 in flight). Prints the medians
and the ratios observed/plain.

    python bench/observability.py [--calls 5000] [--repeat 7]
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


def _observed(kite: Any, side: str) -> None:
    from kite_metrics_prometheus import KiteMetrics
    from kite_tracing_otel import KiteTracing
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_client import CollectorRegistry

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    ratio = float(os.environ.get("KITE_BENCH_SAMPLE_RATIO", "1"))
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(DropSpans()))
    metrics = KiteMetrics(CollectorRegistry())
    metrics.install(kite)
    metrics.serve(kite)
    KiteTracing(tracer_provider=provider).install(kite)


MODES = {"plain": (["websocket"], _plain), "observed": (["websocket"], _observed)}


def scrape(setup: _calls.Setup, url: str) -> None:
    if setup.mode != "observed":
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
    args = parser.parse_args()
    os.environ["KITE_BENCH_SAMPLE_RATIO"] = str(args.sample_ratio)  # for the child processes
    setups = [_calls.Setup("plain", "plain"), _calls.Setup("observed", "observed")]
    workloads = [("seq", args.calls), ("conc64", args.calls * 2)]
    cpus = _calls.run(__file__, setups, workloads, args.repeat, scrape)
    print(f"tracing: ParentBased(TraceIdRatioBased({args.sample_ratio})), spans dropped")
    _calls.report(setups, workloads, [("observed", "plain")], args.repeat, cpus)


if __name__ == "__main__":
    if not _calls.child_main(MODES):
        main()
