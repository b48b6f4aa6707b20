"""The current span, read and made current with the fewest calls (twice per call served).

OpenTelemetry's context API goes through three or four functions for each of these (the
runtime context object, ``get_value``, ``get_current_span``). With the API's default runtime
context (``ContextVarsRuntimeContext``, one ``ContextVar`` holding the current ``Context``),
this module reads and sets that variable directly: the same values, the same tokens. It
reads one private attribute for that (the runtime context's ``_current_context``); with any
other runtime context (``OTEL_PYTHON_CONTEXT``) it goes through the API.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext

__all__ = [
    "SPAN_KEY",
    "VARIABLE",
    "attach",
    "attach_span",
    "detach",
    "in_context",
    "parent_context",
]

logger = logging.getLogger(__name__)

#: The key the API keeps the current span under (taken from the API itself).
_SPAN_KEY = next(iter(trace.set_span_in_context(INVALID_SPAN, Context())))


def _variable() -> ContextVar[Context] | None:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, ContextVar) else None


_VARIABLE = _variable()
#: The ``ContextVar`` holding the current ``Context`` (``None``: another runtime context, go
#: through the API) and the key of the current span in a ``Context``, for callers that
#: inline :func:`attach_span` and :func:`detach` (once per served call).
VARIABLE = _VARIABLE
SPAN_KEY = _SPAN_KEY


def parent_context() -> SpanContext | None:
    """The context of the current span if it is valid (``None``: no span, a new trace)."""
    if _VARIABLE is None:
        span = trace.get_current_span()
    else:
        value = _VARIABLE.get().get(_SPAN_KEY)
        if value is None or not isinstance(value, Span):
            return None
        span = value
    span_context = span.get_span_context()
    return span_context if span_context.is_valid else None


def in_context(span: Span, context: Context | None) -> Context:
    """``context`` (``None``: an empty one) with ``span`` as its current span."""
    if context is None or not context:
        return Context({_SPAN_KEY: span})
    return trace.set_span_in_context(span, context)


def attach(context: Context) -> Token[Context]:
    """Make ``context`` current (``opentelemetry.context.attach``)."""
    if _VARIABLE is None:
        return otel_context.attach(context)
    return _VARIABLE.set(context)


def attach_span(span: Span) -> Token[Context]:
    """Make a context holding only ``span`` current (``attach(in_context(span, None))``)."""
    if _VARIABLE is None:
        return otel_context.attach(Context({_SPAN_KEY: span}))
    return _VARIABLE.set(Context({_SPAN_KEY: span}))


def detach(token: Token[Context]) -> None:
    """Restore the context current before :func:`attach` (``opentelemetry.context.detach``)."""
    if _VARIABLE is None:
        otel_context.detach(token)
        return
    try:
        _VARIABLE.reset(token)
    except Exception:
        logger.exception("Failed to detach context")
