"""W3C trace context (``traceparent`` version ``00``) read and written directly.

The common case, done in a few string operations instead of the generic propagator's regular
expressions (it runs twice per call). Anything unusual (another version, a malformed header)
is left to OpenTelemetry's ``TraceContextTextMapPropagator``, whose rules then apply.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["extract", "inject"]

_PROPAGATOR = TraceContextTextMapPropagator()
_HEX = frozenset("0123456789abcdef")
#: Every ``trace-flags`` field (two lowercase hex digits) and its value, made once.
_FLAGS = {f"{value:02x}": TraceFlags(value) for value in range(256)}
_ROOT = Context()


def extract(carrier: Mapping[str, str]) -> Context:
    """The context a call's metadata carries (empty when it carries none)."""
    header = carrier.get("traceparent")
    if header is None:
        return _ROOT
    flags = _FLAGS.get(header[53:])
    if (
        flags is None
        or len(header) != 55
        or not header.startswith("00-")
        or header[35] != "-"
        or header[52] != "-"
        or not _HEX.issuperset(header[3:35])
        or not _HEX.issuperset(header[36:52])
    ):
        return _PROPAGATOR.extract(carrier)  # its rules for everything else
    trace_id = int(header[3:35], 16)
    span_id = int(header[36:52], 16)
    if not trace_id or not span_id:
        return _ROOT
    state = carrier.get("tracestate")
    span_context = SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=flags,
        trace_state=TraceState.from_header([state]) if state else None,
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), _ROOT)


def inject(carrier: MutableMapping[str, str], span_context: SpanContext) -> None:
    """Write ``span_context`` as ``traceparent`` (and ``tracestate``) into ``carrier``."""
    if not span_context.is_valid:
        return
    carrier["traceparent"] = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )
    if span_context.trace_state:
        carrier["tracestate"] = span_context.trace_state.to_header()
