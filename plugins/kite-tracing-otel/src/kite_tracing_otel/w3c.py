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

__all__ = [
    "FLAGS",
    "TUPLE_LAYOUT",
    "extract",
    "inject",
    "plain_version_00",
    "remote_parent",
    "span_context",
    "valid_00",
    "write",
]

_PROPAGATOR = TraceContextTextMapPropagator()
#: A ``traceparent`` of version ``00`` as the W3C text writes it (lowercase hex).
_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})").fullmatch
#: Every ``trace-flags`` field (two lowercase hex digits) and its value, made once; and back.
#: (``FLAGS``: the first, read-only.)
FLAGS = _FLAGS = {f"{value:02x}": TraceFlags(value) for value in range(256)}
_FLAGS_TEXT = {flags: text for text, flags in _FLAGS.items()}
_FLAGS_BY_VALUE = list(_FLAGS)
#: The same, ids not zero (the W3C text's invalid values): ``valid_00(header)`` is a match
#: or ``None``.
valid_00 = _VALID_00 = re.compile(
    r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
).fullmatch
_ROOT = Context()


def _checked_span_context(
    trace_id: int,
    span_id: int,
    is_remote: bool,
    trace_flags: TraceFlags,
    trace_state: TraceState | None = None,
) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote, trace_flags, trace_state)


def _tuple_span_context(
    trace_id: int,
    span_id: int,
    is_remote: bool,
    trace_flags: TraceFlags,
    trace_state: TraceState | None = None,
) -> SpanContext:
    return tuple.__new__(  # (SpanContext is a tuple: its constructor checks the ids)
        SpanContext,
        (
            trace_id,
            span_id,
            is_remote,
            trace_flags,
            DEFAULT_TRACE_STATE if trace_state is None else trace_state,
            True,
        ),
    )


def _tuple_layout_matches() -> bool:
    """Whether a ``SpanContext`` is the tuple (trace id, span id, remote, flags, state, valid)
    this module builds directly (API 1.x); else it is built through its constructor."""
    try:
        made = SpanContext(1, 2, True, TraceFlags(1), DEFAULT_TRACE_STATE)
        ours = _tuple_span_context(1, 2, True, TraceFlags(1))
    except Exception:  # pragma: no cover (another API)
        return False
    return (
        type(made) is type(ours)
        and tuple(made) == tuple(ours)
        and (made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.is_valid)
        == (ours.trace_id, ours.span_id, ours.is_remote, ours.trace_flags, ours.is_valid)
    )


#: ``span_context(trace_id, span_id, is_remote, flags, state=None)``: a valid ``SpanContext``
#: (the ids are known to be in range): built as its tuple directly (a third of the cost of
#: its constructor, which checks the ids) when the API's layout is the known one.
span_context = _tuple_span_context if _tuple_layout_matches() else _checked_span_context
#: Whether a span context's fields can be read as the tuple it is (in the API's order),
#: without a property call each: when the layout is the known one.
TUPLE_LAYOUT = span_context is _tuple_span_context


def plain_version_00(header: str) -> bool:
    """Whether ``header`` is a valid ``traceparent`` of version ``00`` as the W3C text writes
    it (lowercase hex, ids not zero): its fields are then at fixed places (trace id
    ``[3:35]``, parent id ``[36:52]``, flags ``[53:55]``)."""
    return _VALID_00(header) is not None


def remote_parent(carrier: Mapping[str, str]) -> SpanContext | None:
    """The (valid) span context a call's metadata carries, ``None`` when it carries none."""
    header = carrier.get("traceparent")
    if header is None:
        return None
    match = _VERSION_00(header)
    if match is None:  # the propagator's rules for everything else
        found = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
        return found if found.is_valid else None
    trace_hex, span_hex, flags = match.groups()
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = carrier.get("tracestate")
    return span_context(
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
    if TUPLE_LAYOUT:
        trace_id, span_id, _, flags, state, valid = span_context
    else:
        trace_id, span_id = span_context.trace_id, span_context.span_id
        flags, state, valid = (
            span_context.trace_flags,
            span_context.trace_state,
            span_context.is_valid,
        )
    if not valid:
        return
    carrier["traceparent"] = "00-%032x-%016x-%s" % (  # noqa: UP031 (the fastest form)
        trace_id,
        span_id,
        _FLAGS_TEXT.get(flags) or f"{flags:02x}",
    )
    if state is not DEFAULT_TRACE_STATE and state:
        carrier["tracestate"] = state.to_header()


def write(
    carrier: MutableMapping[str, str],
    trace_id: int,
    span_id: int,
    flags: int,
    state: TraceState | None = None,
) -> None:
    """Write a valid span context given by its fields as ``traceparent`` (and
    ``tracestate``) into ``carrier`` (:func:`inject` without a ``SpanContext``)."""
    carrier["traceparent"] = "00-%032x-%016x-%s" % (  # noqa: UP031 (the fastest form)
        trace_id,
        span_id,
        _FLAGS_BY_VALUE[flags],
    )
    if state is not None and state is not DEFAULT_TRACE_STATE and state:
        carrier["tracestate"] = state.to_header()
