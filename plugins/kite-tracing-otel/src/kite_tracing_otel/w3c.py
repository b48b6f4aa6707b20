"""W3C trace context (``traceparent`` version ``00``) read and written directly.

The common case, done with one regular expression match and a table of flags instead of the
generic propagator's several expressions and objects (it runs twice per call). Anything
unusual (another version, uppercase, a malformed header) is left to OpenTelemetry's
``TraceContextTextMapPropagator``, whose rules then apply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["extract", "inject", "remote_parent"]

_PROPAGATOR = TraceContextTextMapPropagator()
#: A ``traceparent`` of version ``00`` as the W3C text writes it (lowercase hex).
_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})").fullmatch
#: Every ``trace-flags`` field (two lowercase hex digits) and its value, made once; and back.
_FLAGS = {f"{value:02x}": TraceFlags(value) for value in range(256)}
_FLAGS_TEXT = {flags: text for text, flags in _FLAGS.items()}
_ROOT = Context()


def remote_parent(carrier: Mapping[str, str]) -> SpanContext | None:
    """The (valid) span context a call's metadata carries, ``None`` when it carries none."""
    header = carrier.get("traceparent")
    if header is None:
        return None
    match = _VERSION_00(header)
    if match is None:  # the propagator's rules for everything else
        span_context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
        return span_context if span_context.is_valid else None
    trace_hex, span_hex, flags = match.groups()
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = carrier.get("tracestate")
    return SpanContext(
        trace_id, span_id, True, _FLAGS[flags], TraceState.from_header([state]) if state else None
    )


def extract(carrier: Mapping[str, str]) -> Context:
    """The context a call's metadata carries (empty when it carries none)."""
    span_context = remote_parent(carrier)
    if span_context is None:
        return _ROOT
    return trace.set_span_in_context(NonRecordingSpan(span_context), _ROOT)


def inject(carrier: MutableMapping[str, str], span_context: SpanContext) -> None:
    """Write ``span_context`` as ``traceparent`` (and ``tracestate``) into ``carrier``."""
    if not span_context.is_valid:
        return
    flags = span_context.trace_flags
    carrier["traceparent"] = "00-%032x-%016x-%s" % (  # noqa: UP031 (the fastest form)
        span_context.trace_id,
        span_context.span_id,
        _FLAGS_TEXT.get(flags) or f"{flags:02x}",
    )
    state = span_context.trace_state
    if state is not DEFAULT_TRACE_STATE and state:
        carrier["tracestate"] = state.to_header()
