"""kite-tracing-otel: spans across three kites on real sockets, checked with the SDK's
in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from kite_tracing_otel import KiteTracing
from kite_tracing_otel import plugin as tracing_plugin
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from relay_kites import relay_kites

from kitecore import Kite
from kitecore.plugins import load_plugins
from kitecore.protocol.errors import GenericError
from kitecore.testing import CORE_PLUGINS, square

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


class StartsSpans(SpanProcessor):
    """A processor with an ``on_start`` of its own: the plugin leaves its spans to the SDK."""

    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1


@pytest.fixture(params=["w3c", "propagator", "w3c+sdk"])
def tracing(
    exporter: InMemorySpanExporter, request: pytest.FixtureRequest
) -> Iterator[KiteTracing]:
    """Tracing with the built-in W3C reader/writer, or with OpenTelemetry's propagator; spans
    made by the plugin's SpanMaker, or (``+sdk``) by the SDK's start_span."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if request.param.endswith("+sdk"):
        provider.add_span_processor(StartsSpans())
    propagator = TraceContextTextMapPropagator() if request.param == "propagator" else None
    yield KiteTracing(tracer_provider=provider, propagator=propagator)
    provider.shutdown()


async def fail(r: Any) -> None:
    raise RuntimeError("boom")


def by_name(spans: tuple[ReadableSpan, ...], name: str, kind: SpanKind) -> ReadableSpan:
    matches = [s for s in spans if s.name == name and s.kind == kind]
    assert len(matches) == 1, [(s.name, s.kind) for s in spans]
    return matches[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_call_through_three_kites_is_one_trace(
    make_kite: Any, tracing: KiteTracing, exporter: InMemorySpanExporter
) -> None:
    async with relay_kites(make_kite, tracing, {"fail": fail}) as kites:
        assert await kites.a_to_b.tell("relay", 3) == 9
        relayed = exporter.get_finished_spans()
        exporter.clear()
        async with kites.a.new_client(kites.c.url) as a_to_c:
            with pytest.raises(GenericError, match="boom") as failed:
                await a_to_c.tell("fail")
        failures = exporter.get_finished_spans()

    a_client = by_name(relayed, "kite/relay", SpanKind.CLIENT)
    b_server = by_name(relayed, "b/relay", SpanKind.SERVER)
    b_client = by_name(relayed, "kite/square", SpanKind.CLIENT)
    c_server = by_name(relayed, "c/square", SpanKind.SERVER)
    assert len(relayed) == 4
    assert {s.context.trace_id for s in relayed} == {a_client.context.trace_id}
    assert a_client.parent is None
    assert parent_of(b_server) == a_client.context.span_id
    assert parent_of(b_client) == b_server.context.span_id
    assert parent_of(c_server) == b_client.context.span_id
    assert b_server.parent is not None and b_server.parent.is_remote
    assert dict(c_server.attributes or {}) == {
        "rpc.system": "kite",
        "rpc.service": "c",
        "rpc.method": "square",
        "kite.request_id": c_server.attributes["kite.request_id"],  # type: ignore[index]
        "network.peer.address": "127.0.0.1",
        "network.peer.port": c_server.attributes["network.peer.port"],  # type: ignore[index]
    }
    assert a_client.attributes is not None
    assert a_client.attributes["rpc.system"] == "kite"
    assert a_client.attributes["rpc.method"] == "relay"
    assert a_client.attributes["server.port"] == kites.b.port
    assert all(s.status.status_code == StatusCode.UNSET for s in relayed)

    c_failed = by_name(failures, "c/fail", SpanKind.SERVER)
    a_failed = by_name(failures, "kite/fail", SpanKind.CLIENT)
    assert parent_of(c_failed) == a_failed.context.span_id
    for span in (c_failed, a_failed):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == "genericError"
    # the id in the caller's error is the server span's kite.request_id
    assert c_failed.attributes is not None
    assert failed.value.id == c_failed.attributes["kite.request_id"]


async def test_calls_from_a_callback_join_the_trace_of_the_call_that_passed_it(
    make_kite: Any, tracing: KiteTracing, exporter: InMemorySpanExporter
) -> None:
    c = await make_kite("c", methods={"square": square})
    tracing.install(c)

    async def each(r: Any) -> int:  # B calls A's function back
        count = r.args.get(0, int)
        callback = r.args.function(1)
        for i in range(count):
            await callback(i)
        return count

    b = await make_kite("b", methods={"each": each})
    tracing.install(b)
    a = await make_kite("a")
    tracing.install(a)
    done = anyio.Event()
    results: list[float] = []
    async with a.new_client(c.url) as a_to_c, a.new_client(b.url) as a_to_b:

        async def on_item(i: int) -> None:  # A's callback calls C
            results.append(await a_to_c.tell("square", i))
            if len(results) == 2:
                done.set()

        assert await a_to_b.tell("each", 2, on_item) == 2
        with anyio.fail_after(10):
            await done.wait()
    spans = exporter.get_finished_spans()
    each_client = by_name(spans, "kite/each", SpanKind.CLIENT)
    square_clients = [s for s in spans if s.name == "kite/square" and s.kind == SpanKind.CLIENT]
    square_servers = [s for s in spans if s.name == "c/square" and s.kind == SpanKind.SERVER]
    assert sorted(results) == [0, 1]
    assert len(square_clients) == len(square_servers) == 2
    assert {s.context.trace_id for s in spans} == {each_client.context.trace_id}
    assert {parent_of(s) for s in square_clients} == {each_client.context.span_id}
    assert {parent_of(s) for s in square_servers} == {s.context.span_id for s in square_clients}


async def test_a_call_without_trace_context_starts_a_trace(
    make_kite: Any, tracing: KiteTracing, exporter: InMemorySpanExporter
) -> None:
    server = await make_kite("server", methods={"square": square})
    tracing.install(server)
    plain = await make_kite("plain")  # no tracing: sends no metadata
    async with plain.new_client(server.url) as client:
        assert await client.tell("square", 2) == 4
    (span,) = exporter.get_finished_spans()
    assert span.name == "server/square" and span.kind == SpanKind.SERVER
    assert span.parent is None


async def test_the_plugin_traces_kites_that_opt_in(
    monkeypatch: pytest.MonkeyPatch, kite_config: Any
) -> None:
    plugins = load_plugins(names=CORE_PLUGINS, extra_plugins=[tracing_plugin])
    monkeypatch.delenv(tracing_plugin.ENV, raising=False)
    off = Kite("off", "1.0.0", config=kite_config.copy(), plugins=plugins)
    assert not off._server_observers and not off._client_observers
    monkeypatch.setenv(tracing_plugin.ENV, "1")
    on = Kite("on", "1.0.0", config=kite_config.copy(), plugins=plugins)
    assert len(on._server_observers) == len(on._client_observers) == 1
    config = kite_config.copy()
    config.extra["tracing"] = "0"  # the config wins over the environment
    assert not Kite("off", "1.0.0", config=config, plugins=plugins)._server_observers


class _OwnParentBased(ParentBased):
    """ParentBased as a subclass: the plugin can't tell what it does, so the SDK decides."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return super().should_sample(*args, **kwargs)


@pytest.mark.parametrize("sampler", [ParentBased(ALWAYS_OFF), _OwnParentBased(ALWAYS_OFF)])
async def test_an_unsampled_trace_goes_on_through_three_kites_and_records_nothing(
    make_kite: Any, exporter: InMemorySpanExporter, sampler: Sampler
) -> None:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = KiteTracing(tracer_provider=provider)
    seen: dict[str, str] = {}

    def recorder(name: str) -> Any:
        async def record(call: Any, proceed: Any) -> Any:
            seen[name] = call.metadata["traceparent"]
            return await proceed()

        return record

    async with relay_kites(make_kite, tracing, {}) as kites:
        kites.c.add_interceptor(server=recorder("c"))
        kites.b.add_interceptor(server=recorder("b"))
        assert await kites.a_to_b.tell("relay", 3) == 9
    provider.shutdown()
    assert exporter.get_finished_spans() == ()
    _, trace_b, parent_b, flags_b = seen["b"].split("-")
    _, trace_c, parent_c, flags_c = seen["c"].split("-")
    assert trace_b == trace_c  # B's call to C continues A's trace
    assert parent_b != parent_c  # through a span of B's own
    assert flags_b == flags_c  # the same flags, as the SDK sets them (random trace id: 02)
    assert not int(flags_c, 16) & 1  # not sampled


async def test_sampled_by_ratio_a_trace_through_three_kites_is_recorded_whole_or_not_at_all(
    make_kite: Any, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = KiteTracing(tracer_provider=provider)
    seen: list[tuple[str, str]] = []

    async def record(call: Any, proceed: Any) -> Any:
        seen.append((call.kite.name, call.metadata["traceparent"]))
        return await proceed()

    c = await make_kite("c", methods={"square": square})
    tracing.install(c)
    c.add_interceptor(server=record)
    clients: dict[str, Any] = {}

    async def relay(r: Any) -> Any:
        return await clients["c"].tell("square", r.args.one(float))

    b = await make_kite("b", methods={"relay": relay})
    tracing.install(b)
    b.add_interceptor(server=record)
    a = await make_kite("a")
    tracing.install(a)
    async with b.new_client(c.url) as to_c, a.new_client(b.url) as to_b:
        clients["c"] = to_c
        for i in range(24):
            assert await to_b.tell("relay", i) == i * i
    provider.shutdown()
    spans_by_trace: dict[int, int] = {}
    for span in exporter.get_finished_spans():
        assert span.context is not None
        spans_by_trace[span.context.trace_id] = spans_by_trace.get(span.context.trace_id, 0) + 1
    sampled = 0
    for call in range(24):
        (kite_b, header_b), (kite_c, header_c) = seen[2 * call : 2 * call + 2]
        assert (kite_b, kite_c) == ("b", "c")
        _, trace_b, _, flags_b = header_b.split("-")
        _, trace_c, _, flags_c = header_c.split("-")
        assert trace_b == trace_c and flags_b == flags_c  # B's call keeps A's trace, decision
        recorded = spans_by_trace.get(int(trace_b, 16), 0)
        assert recorded == (4 if int(flags_b, 16) & 1 else 0)  # whole or nothing
        sampled += recorded == 4
    assert 0 < sampled < 24  # (each trace has a chance of one half)
    assert sum(spans_by_trace.values()) == 4 * sampled


async def test_calls_from_a_callback_of_an_unsampled_call_keep_its_trace_unsampled(
    make_kite: Any, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = KiteTracing(tracer_provider=provider)
    seen: list[str] = []

    async def record(call: Any, proceed: Any) -> Any:
        seen.append(call.metadata["traceparent"])
        return await proceed()

    c = await make_kite("c", methods={"square": square})
    tracing.install(c)
    c.add_interceptor(server=record)

    async def each(r: Any) -> int:
        await r.args.function(1)(r.args.get(0, int))
        return 1

    b = await make_kite("b", methods={"each": each})
    tracing.install(b)
    b.add_interceptor(server=record)
    a = await make_kite("a")
    tracing.install(a)
    results: list[float] = []
    async with a.new_client(c.url) as a_to_c, a.new_client(b.url) as a_to_b:

        async def on_item(i: int) -> None:  # A's callback calls C
            results.append(await a_to_c.tell("square", i))

        assert await a_to_b.tell("each", 3, on_item) == 1
    provider.shutdown()
    assert results == [9] and exporter.get_finished_spans() == ()
    (_, trace_b, parent_b, flags_b), (_, trace_c, parent_c, flags_c) = (
        header.split("-") for header in seen
    )
    assert trace_b == trace_c and parent_b != parent_c  # the callback's call: same trace
    assert flags_b == flags_c and not int(flags_c, 16) & 1  # still not sampled
