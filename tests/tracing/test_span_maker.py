"""kite-tracing-otel's SpanMaker: the spans it makes are the ones the SDK's start_span makes,
and whatever it cannot make exactly is left to the SDK."""

from __future__ import annotations

from typing import Any

import pytest
from kite_tracing_otel import KiteTracing
from kite_tracing_otel.spans import ONLY_PARENT, SpanMaker
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from relay_kites import relay_kites

from kitecore.protocol.errors import GenericError
from kitecore.testing import square

pytestmark = pytest.mark.anyio


class StartsSpans(SpanProcessor):
    """A processor with an ``on_start`` of its own (the plugin must leave spans to the SDK)."""

    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1


async def busy(r: Any) -> str:
    """A handler that uses the current (server) span the way user code does."""
    span = trace.get_current_span()
    span.set_attribute("app.items", 3)
    span.set_attributes({"app.user": "ann", "app.flags": [True, False]})
    span.add_event("loaded", {"rows": 2}, timestamp=123)
    span.add_link(SpanContext(7, 8, is_remote=True, trace_flags=TraceFlags(1)), {"why": "batch"})
    span.update_name("renamed/busy")
    try:
        raise ValueError("not this one")
    except ValueError as exc:
        span.record_exception(exc)
    return "done"


async def fail(r: Any) -> None:
    raise RuntimeError("boom")


async def calls_through_three_kites(make_kite: Any, tracing: KiteTracing) -> None:
    """A → B (relay, calling C from its handler) → C; A → C busy; A → C fail."""
    async with relay_kites(make_kite, tracing, {"busy": busy, "fail": fail}) as kites:
        async with kites.a.new_client(kites.c.url) as a_to_c:
            assert await kites.a_to_b.tell("relay", 3) == 9
            assert await a_to_c.tell("busy") == "done"
            with pytest.raises(GenericError, match="boom"):
                await a_to_c.tell("fail")


def described(spans: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    """Everything an exporter sees of ``spans``, with ids, times and ports replaced by what
    they mean (which span is whose parent, times in order)."""
    by_id = {s.context.span_id: s for s in spans}
    out = []
    for s in spans:
        parent = s.parent
        attributes = dict(s.attributes or {})
        for key in ("kite.request_id", "network.peer.port", "server.port"):
            if key in attributes:
                attributes[key] = type(attributes[key]).__name__
        assert s.start_time is not None and s.end_time is not None
        assert s.start_time <= s.end_time
        out.append(
            {
                "name": s.name,
                "kind": s.kind,
                "attributes": attributes,
                "status": (s.status.status_code, s.status.description),
                "flags": int(s.context.trace_flags),
                "trace_state": s.context.trace_state.to_header(),
                "remote": s.context.is_remote,
                "parent": None
                if parent is None
                else (
                    by_id[parent.span_id].name if parent.span_id in by_id else "?",
                    parent.is_remote,
                    int(parent.trace_flags),
                ),
                "same_trace": parent is None or parent.trace_id == s.context.trace_id,
                "events": [
                    (
                        e.name,
                        sorted(e.attributes or {}),
                        e.timestamp if e.name != "exception" else 0,
                    )
                    for e in s.events
                ],
                "links": [(k.context.span_id, dict(k.attributes or {})) for k in s.links],
                "dropped": (s.dropped_attributes, s.dropped_events, s.dropped_links),
                "resource": dict(s.resource.attributes),
                "scope": s.instrumentation_scope,
                "type": type(s),
            }
        )
    return sorted(out, key=lambda d: (d["name"], d["kind"].value))


def provider_with(exporter: InMemorySpanExporter, *processors: SpanProcessor, **kw: Any) -> Any:
    provider = TracerProvider(resource=Resource.create({"service.name": "kites"}), **kw)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


async def test_the_plugin_makes_the_spans_the_sdk_makes(
    make_kite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_starts = 0
    start_span = SdkTracer.start_span

    def counted(self: SdkTracer, *args: Any, **kwargs: Any) -> Any:
        nonlocal sdk_starts
        sdk_starts += 1
        return start_span(self, *args, **kwargs)

    monkeypatch.setattr(SdkTracer, "start_span", counted)
    seen = {}
    for path in ("maker", "sdk"):
        exporter = InMemorySpanExporter()
        starts = StartsSpans()
        provider = provider_with(exporter, *([starts] if path == "sdk" else []))
        tracing = KiteTracing(tracer_provider=provider)
        sdk_starts = 0
        await calls_through_three_kites(make_kite, tracing)
        provider.shutdown()
        spans = exporter.get_finished_spans()
        assert len(spans) == 8
        # the maker made every span, or (a processor with on_start) the SDK did
        assert sdk_starts == (0 if path == "maker" else 8)
        assert starts.started == (0 if path == "maker" else 8)
        seen[path] = described(spans)
    assert seen["maker"] == seen["sdk"]
    busy_span = next(d for d in seen["maker"] if d["name"] == "renamed/busy")
    assert busy_span["attributes"]["app.user"] == "ann"
    assert [e[0] for e in busy_span["events"]] == ["loaded", "exception"]
    assert busy_span["links"] == [(8, {"why": "batch"})]
    assert busy_span["scope"].name == "kite_tracing_otel"
    assert busy_span["resource"]["service.name"] == "kites"
    assert busy_span["flags"] == 3  # sampled, random trace id
    failed = next(d for d in seen["maker"] if d["name"] == "c/fail")
    assert failed["status"] == (StatusCode.ERROR, "boom")


async def test_span_limits_the_plugin_would_not_apply_leave_spans_to_the_sdk(
    make_kite: Any,
) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, span_limits=SpanLimits(max_span_attributes=2))
    tracing = KiteTracing(tracer_provider=provider)
    assert SpanMaker.for_tracer(tracing.tracer) is None
    server = await make_kite("server", methods={"square": square})
    tracing.install(server)
    async with server.new_client(server.url) as client:
        assert await client.tell("square", 2) == 4
    provider.shutdown()
    assert {len(s.attributes or {}) for s in exporter.get_finished_spans()} == {2}
    assert all(s.dropped_attributes > 0 for s in exporter.get_finished_spans())


def test_what_the_maker_cannot_read_is_left_to_the_sdk() -> None:
    provider = TracerProvider()
    assert SpanMaker.for_tracer(provider.get_tracer("x")) is not None
    assert SpanMaker.for_tracer(trace.NoOpTracer()) is None

    class OwnTracer(SdkTracer):
        pass

    tracer = provider.get_tracer("y")
    tracer.__class__ = OwnTracer
    assert SpanMaker.for_tracer(tracer) is None  # a subclass may make spans its own way
    for private in ("_span_limits", "_instrumentation_scope"):
        tracer = provider.get_tracer(private)
        delattr(tracer, private)  # as in an SDK where it is called something else
        assert SpanMaker.for_tracer(tracer) is None
    tracer = provider.get_tracer("metrics")
    tracer._tracer_metrics = object()  # type: ignore[assignment]  # the SDK's own metrics on
    assert SpanMaker.for_tracer(tracer) is None


class Counting(RandomIdGenerator):
    """Trace ids spread over the whole range, in order (reproducible)."""

    def __init__(self) -> None:
        self.next = 0

    def generate_trace_id(self) -> int:
        self.next += 1
        return (self.next * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % (1 << 128) or 1


class OwnRatio(TraceIdRatioBased):
    """A sampler the maker does not know: it asks it."""


@pytest.mark.parametrize(
    "sampler",
    [
        ParentBased(OwnRatio(0.3)),
        OwnRatio(0.5),
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.3),
        ParentBased(TraceIdRatioBased(0.3)),
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_OFF, remote_parent_not_sampled=ALWAYS_ON),
        ParentBased(ALWAYS_ON, local_parent_sampled=TraceIdRatioBased(0.5)),
    ],
)
def test_the_maker_takes_the_samplers_decisions(sampler: Sampler) -> None:
    provider = TracerProvider(sampler=sampler, id_generator=Counting())
    maker = SpanMaker.for_tracer(provider.get_tracer("x"))
    assert maker is not None
    attributes = {"rpc.system": "kite"}
    parents: list[SpanContext | None] = [None]
    for remote in (True, False):
        for flags in (0, 1, 3):
            parents.append(SpanContext(0xABC << 70, 5, remote, TraceFlags(flags)))
    for parent in parents:
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
        for _ in range(50):
            span = maker.start("n", SpanKind.SERVER, attributes, parent, ONLY_PARENT)
            assert span is not None
            made = span.get_span_context()
            expected = sampler.should_sample(context, made.trace_id, "n", SpanKind.SERVER)
            assert span.is_recording() == expected.decision.is_recording()
            assert made.trace_flags.sampled == expected.decision.is_sampled()
            assert made.trace_state == (expected.trace_state or TraceState())
            if parent is not None:
                assert made.trace_id == parent.trace_id
                assert made.trace_flags.random_trace_id == parent.trace_flags.random_trace_id
            span.end()


def test_the_maker_follows_a_replaced_sampler() -> None:
    provider = TracerProvider(sampler=ALWAYS_ON)
    tracer = provider.get_tracer("x")
    maker = SpanMaker.for_tracer(tracer)
    assert maker is not None
    span = maker.start("n", SpanKind.CLIENT, {}, None, None)
    assert span is not None and span.is_recording()
    tracer.sampler = ALWAYS_OFF  # the SDK's start_span reads it at every span
    span = maker.start("n", SpanKind.CLIENT, {}, None, None)
    assert span is not None and not span.is_recording()


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_a_new_traces_decision_and_dropped_header_are_the_samplers(ratio: float) -> None:
    sampler = ParentBased(TraceIdRatioBased(ratio))
    maker = SpanMaker.for_tracer(TracerProvider(sampler=sampler).get_tracer("x"))
    assert maker is not None
    seen = set()
    for _ in range(300):
        carrier: dict[str, str] = {}
        decided = maker.sample_root(carrier)
        assert decided is not None
        trace_id, sampled = decided
        expected = sampler.should_sample(None, trace_id, "n", SpanKind.CLIENT)
        assert sampled == expected.decision.is_sampled()
        if sampled:
            assert carrier == {}  # the sampled span writes its own context
            continue
        header = carrier["traceparent"]
        version, trace_hex, span_hex, flags = header.split("-")
        assert (version, int(trace_hex, 16), flags) == ("00", trace_id, "02")
        assert len(trace_hex) == 32 and len(span_hex) == 16 and int(span_hex, 16)
        assert header == header.lower()
        seen.add(span_hex)
    assert ratio == 1.0 or len(seen) > 150  # (new span ids)


def test_a_new_trace_follows_a_replaced_id_generator() -> None:
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("x")
    maker = SpanMaker.for_tracer(tracer)
    assert maker is not None
    ids = tracer.id_generator = Counting()  # the SDK reads it at every span
    carrier: dict[str, str] = {}
    decided = maker.sample_root(carrier)
    expected = (ids.next * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % (1 << 128)
    assert decided == (expected, False)  # the new generator's id, dropped
    _, trace_hex, span_hex, flags = carrier["traceparent"].split("-")  # still sent on
    assert int(trace_hex, 16) == expected and int(span_hex, 16) and flags == "02"


def test_a_dropped_remote_parent_follows_a_replaced_sampler() -> None:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    tracer = provider.get_tracer("x")
    maker = SpanMaker.for_tracer(tracer)
    assert maker is not None
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert maker.dropped_remote(header, {}) is not None  # not sampled: dropped
    assert maker.dropped_remote(header[:-2] + "01", {}) is None  # sampled: recorded
    assert maker.dropped_remote(header.upper(), {}) is None  # another form: parsed
    tracer.sampler = ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
    assert maker.dropped_remote(header, {}) is None  # now recorded


def test_a_dropped_remote_parent_takes_a_string_tracestate_only() -> None:
    """``dropped_remote`` takes any mapping: a ``tracestate`` that is not a string is absent,
    as in ``call.metadata``; a string one is the span's trace state."""
    maker = SpanMaker.for_tracer(TracerProvider().get_tracer("x"))
    assert maker is not None
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    for carrier in ({"tracestate": 5}, {"tracestate": ["a=b"]}, {}):
        dropped = maker.dropped_remote(header, carrier)
        assert dropped is not None
        assert not dropped.get_span_context().trace_state
    dropped = maker.dropped_remote(header, {"tracestate": "a=b"})
    assert dropped is not None
    assert dict(dropped.get_span_context().trace_state) == {"a": "b"}


def test_an_ended_call_span_changes_no_more(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter)
    maker = SpanMaker.for_tracer(provider.get_tracer("x"))
    assert maker is not None
    span = maker.start("n", SpanKind.CLIENT, {"a": 1}, None, None)
    assert span is not None
    span.set_status(Status(StatusCode.OK))
    span.set_status(StatusCode.ERROR, "ignored: OK is final")
    span.end()
    span.set_attribute("late", 1)
    span.end()
    (exported,) = exporter.get_finished_spans()
    assert dict(exported.attributes or {}) == {"a": 1}
    assert exported.status.status_code == StatusCode.OK
    assert not span.is_recording()
    assert "ended span" in caplog.text
