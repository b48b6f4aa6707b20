"""Spans for kite calls (:class:`KiteTracing`), on the core's call observers.

Every call a kite serves gets a ``SERVER`` span and every ``tell`` a ``CLIENT`` span, named
``<service>/<method>`` with the RPC semantic conventions:

- ``rpc.system`` = ``kite``, ``rpc.service`` = the serving kite's name (on the client side:
  the remote kite's name when known, else empty), ``rpc.method``;
- ``kite.request_id`` (server side): the id the caller sees at the end of an error message;
- ``server.address``/``server.port`` (client side) and ``network.peer.address``/``.port``
  (server side);
- on failure: status ``ERROR`` with the error message and ``error.type`` = the Kite wire
  error type (``argumentError``, ``timeout``, ...; ``genericError`` for a handler's exception).

Trace context travels in the request's call metadata (:mod:`kitecore.interceptors`) as W3C
``traceparent``/``tracestate`` entries, injected by the client span and extracted by the
server, so a call A → B → C made from inside B's handler is one trace. The server span is
the current span while the handler runs (contextvars), and functions passed as arguments
(callbacks) run inside the client span of the call that passed them, so calls made from a
callback join the trace too.

Per call, the plugin's own work is kept small: names and attributes are made once per method
and peer, W3C headers are read and written directly, and with the OpenTelemetry SDK's tracer
(the usual case) spans are made by :class:`~kite_tracing_otel.spans.SpanMaker` instead of the
SDK's ``start_span`` (about a tenth of its cost), exactly as the SDK would make them, and
handed to the same span processors; whatever it cannot make exactly is left to the SDK.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from kitecore import Kite
from kitecore.interceptors import (
    ClientCall,
    ClientObserver,
    ServerCall,
    ServerObserver,
    error_type,
)

from . import current, w3c
from .current import SPAN_KEY as _SPAN_KEY
from .current import VARIABLE as _VARIABLE

try:
    from .spans import ONLY_PARENT, SpanMaker
except ImportError:  # the API alone (no SDK): the tracer makes the spans
    SpanMaker = None  # type: ignore[assignment,misc]  # (a module-level "maybe")
    ONLY_PARENT = otel_context.Context()

__all__ = ["INSTRUMENTATION_NAME", "KiteTracing"]

#: The instrumentation scope name of the spans.
INSTRUMENTATION_NAME = "kite_tracing_otel"
_SYSTEM = "kite"
#: The parent of a call that carries no trace context: none (it starts a trace).
_ROOT = otel_context.Context()


class KiteTracing:
    """Tracing of one or more kites.

    ``tracer_provider`` defaults to OpenTelemetry's global one (set it up with the SDK, e.g.
    ``trace.set_tracer_provider(TracerProvider())`` plus a span processor and exporter);
    ``propagator`` defaults to W3C trace context (``traceparent``/``tracestate``); pass any
    OpenTelemetry ``TextMapPropagator`` to carry another format in the call metadata.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.tracer: Tracer = trace.get_tracer(
            INSTRUMENTATION_NAME, tracer_provider=tracer_provider
        )
        #: ``None``: W3C trace context, read and written by :mod:`kite_tracing_otel.w3c`.
        self.propagator = propagator
        # span names and attributes, made once per (service, method, peer or URL)
        self._server_static = _Cache()
        self._client_static = _Cache()
        #: Makes the spans when the tracer is the SDK's (``None``: the tracer does).
        self._maker = _span_maker(self.tracer)

    def install(self, kite: Kite) -> None:
        """Trace every call ``kite`` serves and makes."""
        kite.add_observer(server=self.server_observer, client=self.client_observer)

    @property
    def server_observer(self) -> ServerObserver:
        """The observer (:mod:`kitecore.interceptors`) that makes the ``SERVER`` spans."""
        return (self._server_started, _server_ended)

    @property
    def client_observer(self) -> ClientObserver:
        """The observer that makes the ``CLIENT`` spans and sends their context."""
        return (self._client_started, _client_ended)

    def _server_started(
        self, call: ServerCall
    ) -> tuple[Span | None, Token[Context]] | Token[Context]:
        """A ``SERVER`` span for one served call, child of the caller's span if it sent one,
        made the current span (with the token that resets it). A span the sampler drops is
        only its context (for the calls the handler makes): the state is the token alone."""
        metadata = call.metadata
        maker = self._maker
        if metadata and maker is not None and self.propagator is None:
            header = metadata.get("traceparent")
            if header is not None:  # the usual case: dropped as its caller's was
                dropped = maker.dropped_remote(header, metadata)
                if dropped is not None:  # (a token alone: nothing to end)
                    if _VARIABLE is not None:  # (current.attach_span, inline)
                        return _VARIABLE.set(Context({_SPAN_KEY: dropped}))
                    return current.attach_span(dropped)
        # without trace context from the caller the call starts a trace of its own
        context: Context | None = None  # the caller's, when not only its span
        if not metadata:
            parent = None
        elif self.propagator is None:
            parent = w3c.remote_parent(metadata)
        else:
            context = self.propagator.extract(metadata)
            parent = _valid(trace.get_current_span(context).get_span_context())
        span = None
        if maker is not None:
            decided = maker.sample(parent)
            if decided is not None:
                if decided[1] is False:  # dropped: no name, no attributes, no span to end
                    dropped = NonRecordingSpan(maker.unsampled(decided[0], parent))
                    return current.attach(current.in_context(dropped, context))
                name, attributes = self._server_names(call)
                span = maker.start(
                    name,
                    SpanKind.SERVER,
                    attributes,
                    parent,
                    context or ONLY_PARENT,
                    call.request,
                    decided,
                )
        if span is None:
            name, attributes = self._server_names(call)
            span = self.tracer.start_span(
                name,
                context=_context_of(parent) if context is None else context,
                kind=SpanKind.SERVER,
                attributes={**attributes, "kite.request_id": call.request.id},
            )
        return span, current.attach(current.in_context(span, context))

    def _server_names(self, call: ServerCall) -> _Static:
        key = (call.kite.name, call.method, call.peer.remote_address)
        static = self._server_static.get(key)
        if static is None:
            static = self._server_static.remember(key, _server_static(*key))
        return static

    def _client_started(self, call: ClientCall) -> Span | None:
        """A ``CLIENT`` span for one ``tell``; its context goes out in the metadata. A span
        the sampler drops is only its context, sent on (``None`` is the state)."""
        span = None
        maker = self._maker
        if maker is not None:
            parent = current.parent_context()
            if parent is None and self.propagator is None:  # a new trace, W3C context
                # dropped: its traceparent is written already (the span id is the header's)
                decided = maker.sample_root(call.metadata)
                if decided is not None and decided[1] is False:
                    for arg in call.args:  # (_has_callbacks, inline)
                        if type(arg) is dict or callable(arg):
                            span_id = int(call.metadata["traceparent"][36:52], 16)
                            dropped = maker.unsampled(decided[0], None, span_id)
                            _wrap_callbacks(call, NonRecordingSpan(dropped))
                            break
                    return None
            else:
                decided = maker.sample(parent)
            if decided is not None:
                if decided[1] is False and self.propagator is None:
                    # dropped: only the context goes on (a span only for callbacks)
                    trace_id = decided[0]
                    span_id = maker.write_unsampled(call.metadata, trace_id, parent)
                    for arg in call.args:  # (_has_callbacks, inline)
                        if type(arg) is dict or callable(arg):
                            dropped = maker.unsampled(trace_id, parent, span_id)
                            _wrap_callbacks(call, NonRecordingSpan(dropped))
                            break
                    return None
                name, attributes = self._client_names(call)
                span = maker.start(name, SpanKind.CLIENT, attributes, parent, None, None, decided)
        if span is None:
            name, attributes = self._client_names(call)
            span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        if self.propagator is None:
            w3c.inject(call.metadata, span.get_span_context())
        else:
            self.propagator.inject(call.metadata, context=trace.set_span_in_context(span))
        if _has_callbacks(call.args):
            _wrap_callbacks(call, span)
        return span

    def _client_names(self, call: ClientCall) -> _Static:
        client = call.client
        remote = client.remote_kite
        key = (remote.name if remote is not None else "", call.method, client.url or "")
        static = self._client_static.get(key)
        if static is None:
            static = self._client_static.remember(key, _client_static(*key))
        return static


def _server_ended(
    call: ServerCall,
    state: tuple[Span | None, Token[Context]] | Token[Context],
    error: BaseException | None,
) -> None:
    if not isinstance(state, tuple):  # a dropped span's: only the context to reset
        if _VARIABLE is None:
            current.detach(state)
            return
        try:  # (current.detach, inline)
            _VARIABLE.reset(state)
        except Exception:
            current.logger.exception("Failed to detach context")
        return
    span, token = state
    current.detach(token)
    if span is not None:
        if error is not None:
            _failed(span, error)
        span.end()


def _client_ended(call: ClientCall, span: Span | None, error: BaseException | None) -> None:
    if span is not None:
        if error is not None:
            _failed(span, error)
        span.end()


def _has_callbacks(args: tuple[Any, ...]) -> bool:
    """Whether there may be functions among a call's arguments (they become callbacks)."""
    for arg in args:
        if type(arg) is dict or callable(arg):
            return True
    return False


def _wrap_callbacks(call: ClientCall, span: Span) -> None:
    """Make the functions among the call's arguments run inside ``span``."""
    span_context = trace.set_span_in_context(span)
    call.args = tuple(_in_context(arg, span_context) for arg in call.args)


def _span_maker(tracer: Tracer) -> SpanMaker | None:
    """A :class:`SpanMaker` for an SDK tracer it can serve (``None`` without the SDK)."""
    if SpanMaker is None:  # the API alone
        return None
    return SpanMaker.for_tracer(tracer)


def _valid(span_context: SpanContext) -> SpanContext | None:
    return span_context if span_context.is_valid else None


def _context_of(parent: SpanContext | None) -> otel_context.Context:
    """The context holding only the remote ``parent`` span (the SDK's ``start_span`` input)."""
    if parent is None:
        return _ROOT
    return trace.set_span_in_context(NonRecordingSpan(parent), _ROOT)


#: A span's name and the attributes every span of one key shares.
_Static: TypeAlias = tuple[str, Mapping[str, AttributeValue]]


class _Cache(dict[tuple[str, str, str], _Static]):
    """Span names and attributes by key, computed once per key; emptied when it reaches
    :data:`_CACHE_SIZE` entries (peer addresses are many: one per caller connection)."""

    def remember(self, key: tuple[str, str, str], value: _Static) -> _Static:
        if len(self) >= _CACHE_SIZE:
            self.clear()
        self[key] = value
        return value


_CACHE_SIZE = 4096


def _server_static(service: str, method: str, address: str) -> _Static:
    """The name and shared attributes of the spans of calls of ``method`` served by
    ``service`` to the peer at ``address``."""
    attributes: dict[str, AttributeValue] = {
        "rpc.system": _SYSTEM,
        "rpc.service": service,
        "rpc.method": method,
    }
    if address:
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            attributes["network.peer.address"] = host.strip("[]")
            attributes["network.peer.port"] = int(port)
        else:
            attributes["network.peer.address"] = address
    return f"{service}/{method}", attributes


def _client_static(service: str, method: str, url: str) -> _Static:
    """The name and attributes of the spans of calls of ``method`` on ``service`` at ``url``."""
    attributes: dict[str, AttributeValue] = {
        "rpc.system": _SYSTEM,
        "rpc.service": service,
        "rpc.method": method,
    }
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        if port:
            attributes["server.port"] = port
    return f"{service or _SYSTEM}/{method}", attributes


def _failed(span: Any, exc: BaseException) -> None:
    kind = error_type(exc)
    span.set_attribute("error.type", kind)
    message = getattr(exc, "message", None)
    span.set_status(Status(StatusCode.ERROR, message if isinstance(message, str) else str(exc)))


def _in_context(arg: Any, context: otel_context.Context) -> Any:
    """``arg`` with its functions (top level or values of a dict) run inside ``context``."""
    if callable(arg):
        return _run_in(arg, context)
    if type(arg) is dict:
        return {k: _run_in(v, context) if callable(v) else v for k, v in arg.items()}
    return arg


def _run_in(function: Callable[..., Any], context: otel_context.Context) -> Callable[..., Any]:
    async def callback(*args: Any) -> Any:
        token = otel_context.attach(context)
        try:
            outcome = function(*args)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            return outcome
        finally:
            otel_context.detach(token)

    return callback
