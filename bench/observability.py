"""The cost of observing kites: ``square`` calls/s, plain vs metrics and tracing both on.

Set-ups, each its own server and client process, measured in alternating rounds:

- ``plain``: no plugin;
- ``observed``: kite-metrics-prometheus (``/metrics`` served by the server and scraped over
  HTTP after every round) and kite-tracing-otel (the SDK's ``TracerProvider`` with a
  ``BatchSpanProcessor``, as a deployment would use, or ``--processor simple``, and an
  exporter that drops the spans), on both sides; once per ``--sample-ratio``: by default
  every trace sampled (``observed 100%``) and the documented production setting,
  ``ParentBased(TraceIdRatioBased(0.01))`` (``observed 1%``).

With ``--parts`` also ``metrics`` and ``tracing`` alone, ``spans``: bare SDK spans (one
per call and side, no context carried), the share of the cost that is the SDK's own, and the
floor of both plugins' costs, made of set-ups that do none of tracing's own work:

- ``seam``: two observers per side that do nothing (the core's seam as two plugins use it);
- ``carried``: the same, one of them carrying a ``traceparent`` (the client writes the same
  one into every call's metadata, the server reads it: encoded, sent and parsed, no ids
  drawn, no header checked, no context set);
- ``floor``: the metrics plugin and that carrying observer: what both plugins would cost if
  tracing did nothing but carry its header (``observed`` minus ``floor`` is tracing's own
  work: ids, the header written and checked, the current span set and reset).

Workloads: ``seq`` (one call after another) and ``conc64`` (64 in flight). Prints the medians
and the ratios to plain, by wall clock and by CPU time (server + client CPU seconds per
round: steadier on a busy machine).

    python bench/observability.py [--calls 5000] [--repeat 7] [--sample-ratio 1.0 ...]
        [--processor batch|simple] [--parts] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import glob
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


#: The ``traceparent`` the ``carried`` and ``floor`` set-ups send (a dropped trace's, flags 00).
_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def _nothing(call: Any, state: Any = None, error: BaseException | None = None) -> None:
    pass


def _write_traceparent(call: Any) -> None:
    call.metadata["traceparent"] = _TRACEPARENT


def _read_traceparent(call: Any) -> Any:
    return call.metadata.get("traceparent")


def _seam(kite: Any, side: str) -> None:
    """Two observers that do nothing (the seam as two plugins use it)."""
    for _ in range(2):
        kite.add_observer(**{side: (_nothing, _nothing)})


def _carrier(kite: Any, side: str) -> None:
    """An observer that only carries a ``traceparent``: written by the client, read by the
    server."""
    start = _read_traceparent if side == "server" else _write_traceparent
    kite.add_observer(**{side: (start, _nothing)})


def _carried(kite: Any, side: str) -> None:
    kite.add_observer(**{side: (_nothing, _nothing)})
    _carrier(kite, side)


def _floor(kite: Any, side: str) -> None:
    _metrics(kite, side)
    _carrier(kite, side)


class _Modes(dict[str, Any]):
    """The modes; ``"<mode>:<ratio>"`` is ``<mode>`` with that share of traces sampled."""

    def __missing__(self, key: str) -> Any:
        mode, _, ratio = key.partition(":")
        if not ratio:
            raise KeyError(key)
        os.environ["KITE_BENCH_SAMPLE_RATIO"] = ratio  # read by _provider in this child
        return self[mode]


#: The sampling the plugin's README recommends for production.
RECOMMENDED_RATIO = 0.01

MODES = _Modes(
    {
        "plain": (["websocket"], _plain),
        "metrics": (["websocket"], _metrics),
        "tracing": (["websocket"], _tracing),
        "observed": (["websocket"], _observed),
        "spans": (["websocket"], _spans),
        "seam": (["websocket"], _seam),
        "carried": (["websocket"], _carried),
        "floor": (["websocket"], _floor),
    }
)


def scrape(setup: _calls.Setup, url: str) -> None:
    if setup.mode.partition(":")[0] not in ("observed", "metrics", "floor"):
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
        action="append",
        help="share of traces sampled (ParentBased(TraceIdRatioBased)), once per value; "
        f"default: 1.0 (every span recorded) and {RECOMMENDED_RATIO} (the recommended setting)",
    )
    parser.add_argument(
        "--processor",
        choices=["batch", "simple"],
        default="batch",
        help="the span processor (BatchSpanProcessor or SimpleSpanProcessor)",
    )
    parser.add_argument(
        "--baseline-tree",
        help="a checkout of another commit (its kitecore and plugins/*/src; or a directory"
        " holding kitecore, kite_tracing_otel and kite_metrics_prometheus): also measure"
        " `observed` on that code",
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also measure metrics alone, tracing alone, bare SDK spans and the floor of both"
        " plugins (seam: two observers doing nothing; carried: one of them carrying a"
        " traceparent; floor: metrics and that carrier)",
    )
    args = parser.parse_args()
    sample_ratios = args.sample_ratio or [1.0, RECOMMENDED_RATIO]
    os.environ["KITE_BENCH_PROCESSOR"] = args.processor  # for the child processes
    setups = [_calls.Setup("plain", "plain")]
    ratios = []
    for ratio in sample_ratios:
        label = f"observed {ratio:.0%}"
        setups.append(_calls.Setup(label, f"observed:{ratio}"))
        ratios.append((label, "plain"))
        if args.baseline_tree:
            tree = os.path.abspath(args.baseline_tree)
            setups.append(_calls.Setup(f"base {ratio:.0%}", f"observed:{ratio}", tree))
            ratios.append((f"base {ratio:.0%}", "plain"))
    if args.parts:  # at the first ratio
        first = sample_ratios[0]
        setups += [
            _calls.Setup("metrics", "metrics"),
            _calls.Setup("tracing", f"tracing:{first}"),
            _calls.Setup("spans", f"spans:{first}"),
            _calls.Setup("seam", "seam"),
            _calls.Setup("carried", "carried"),
            _calls.Setup("floor", "floor"),
        ]
        parts = ("metrics", "tracing", "spans", "seam", "carried", "floor")
        ratios += [(label, "plain") for label in parts]
    workloads = [("seq", args.calls), ("conc64", args.calls * 2)]
    cpus = _calls.run(__file__, setups, workloads, args.repeat, scrape)
    print(
        f"tracing: ParentBased(TraceIdRatioBased(r)), r = {sample_ratios}, "
        f"{args.processor} span processor, spans dropped"
    )
    _calls.report(setups, workloads, ratios, args.repeat, cpus)


def _tree_plugins() -> None:
    """In a child of a ``--baseline-tree`` checkout, take that checkout's plugins too (its
    ``plugins/*/src``), not only its ``kitecore``: else the installed (this tree's) plugins
    would run on the other core."""
    if len(sys.argv) >= 4 and sys.argv[1] in ("--serve", "--client") and sys.argv[3] != "-":
        for source in sorted(glob.glob(os.path.join(sys.argv[3], "plugins", "*", "src"))):
            sys.path.insert(0, source)


if __name__ == "__main__":
    _tree_plugins()
    if not _calls.child_main(MODES):
        main()
