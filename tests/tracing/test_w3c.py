"""The direct W3C trace-context reader and writer agree with OpenTelemetry's propagator."""

from __future__ import annotations

import pytest
from kite_tracing_otel import w3c
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def seen(context: Context) -> tuple[object, ...]:
    span_context = trace.get_current_span(context).get_span_context()
    return (
        span_context.trace_id,
        span_context.span_id,
        int(span_context.trace_flags),
        span_context.is_remote,
        span_context.trace_state.to_header(),
    )


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-00"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "congo=t61rcWkgMzE,rojo=00f067"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},  # invalid trace id
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},  # invalid span id
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"01-{TRACE}-{SPAN}-01-what-the-future-adds"},
        {"traceparent": f"00-{TRACE}-{SPAN}-0x"},
        {"traceparent": f"00-{TRACE}-{SPAN}"},
        {"traceparent": ""},
        {"tracestate": "a=b"},
        {},
    ],
)
def test_extract_agrees_with_the_propagator(carrier: dict[str, str]) -> None:
    assert seen(w3c.extract(carrier)) == seen(PROPAGATOR.extract(carrier))


@pytest.mark.parametrize("flags", [0, 1])
@pytest.mark.parametrize("state", ["", "congo=t61rcWkgMzE"])
def test_inject_agrees_with_the_propagator(flags: int, state: str) -> None:
    span_context = SpanContext(
        int(TRACE, 16),
        int(SPAN, 16),
        is_remote=False,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else None,
    )
    ours: dict[str, str] = {}
    theirs: dict[str, str] = {}
    w3c.inject(ours, span_context)
    PROPAGATOR.inject(theirs, context=trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert ours == theirs
    assert seen(w3c.extract(ours))[:3] == (int(TRACE, 16), int(SPAN, 16), flags)


def test_an_invalid_span_context_is_not_injected() -> None:
    carrier: dict[str, str] = {}
    w3c.inject(carrier, trace.INVALID_SPAN_CONTEXT)
    assert carrier == {}


def test_span_contexts_made_directly_equal_the_apis() -> None:
    assert w3c.TUPLE_LAYOUT  # (the API this is tested with)
    state = TraceState([("k", "v")])
    for fields in [(1 << 100, 7, True, TraceFlags(1), state), (5, 1 << 60, False, TraceFlags(2))]:
        ours, api = w3c.span_context(*fields), SpanContext(*fields)  # type: ignore[arg-type]
        assert type(ours) is SpanContext and ours == api
        assert (ours.trace_id, ours.span_id, ours.is_remote, ours.trace_flags) == fields[:4]
        assert ours.trace_state == api.trace_state and ours.is_valid


def test_plain_version_00() -> None:
    good = f"00-{TRACE}-{SPAN}-01"
    assert w3c.plain_version_00(good)
    for bad in [
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"01-{TRACE}-{SPAN}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE[:-1]}g-{SPAN}-01",
    ]:
        assert not w3c.plain_version_00(bad), bad
