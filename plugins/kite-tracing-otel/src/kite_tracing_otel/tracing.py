"""Spans for kite calls (:class:`KiteTracing`), on the core's interceptors.

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

Per call, the plugin's own work is kept small (names and attributes made once per method and
peer, W3C headers read and written directly); the SDK's ``start_span``/``end`` is most of the
cost of a recorded span. A call whose caller's trace is not sampled gets its non-recording span
without the SDK when the tracer is the SDK's with the default ``ParentBased`` sampler (which
would drop it anyway).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from kitecore import Kite
from kitecore.interceptors import ClientCall, Proceed, ServerCall, error_type

from . import w3c

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
        #: Span ids for calls from unsampled traces when the sampler is known to drop them.
        self._new_span_id = _unsampled_remote_dropped(self.tracer)

    def install(self, kite: Kite) -> None:
        """Trace every call ``kite`` serves and makes."""
        kite.add_interceptor(server=self.server_interceptor, client=self.client_interceptor)

    async def server_interceptor(self, call: ServerCall, proceed: Proceed) -> Any:
        """A ``SERVER`` span around one served call, child of the caller's span if it sent one."""
        metadata = call.metadata
        # without trace context from the caller the call starts a trace of its own
        if not metadata:
            parent = _ROOT
        elif self.propagator is None:
            parent = w3c.extract(metadata)
        else:
            parent = self.propagator.extract(metadata)
        span = self._unsampled(parent) if self._new_span_id is not None else None
        if span is None:
            key = (call.kite.name, call.method, call.peer.remote_address)
            static = self._server_static.get(key)
            if static is None:
                static = self._server_static.remember(key, _server_static(*key))
            name, attributes = static
            span = self.tracer.start_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={**attributes, "kite.request_id": call.request.id},
            )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await proceed()
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def _unsampled(self, parent: otel_context.Context) -> Span | None:
        """The span of a call whose caller's trace is not sampled, made without the SDK when
        its sampler would drop it anyway (``None``: ask the SDK).

        The same span the SDK would make: not recording, the caller's trace id, trace state
        and random-trace-id flag, a span id of its own."""
        remote = trace.get_current_span(parent).get_span_context()
        if not remote.is_remote or remote.trace_flags.sampled or not remote.is_valid:
            return None
        assert self._new_span_id is not None
        return NonRecordingSpan(
            SpanContext(
                remote.trace_id,
                self._new_span_id(),
                is_remote=False,
                trace_flags=_RANDOM if remote.trace_flags & _RANDOM else _NOT_SAMPLED,
                trace_state=remote.trace_state,
            )
        )

    async def client_interceptor(self, call: ClientCall, proceed: Proceed) -> Any:
        """A ``CLIENT`` span around one ``tell``; its context goes out in the metadata."""
        client = call.client
        remote = client.remote_kite
        key = (remote.name if remote is not None else "", call.method, client.url or "")
        static = self._client_static.get(key)
        if static is None:
            static = self._client_static.remember(key, _client_static(*key))
        name, attributes = static
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        if self.propagator is None:
            w3c.inject(call.metadata, span.get_span_context())
        else:
            self.propagator.inject(call.metadata, context=trace.set_span_in_context(span))
        for arg in call.args:  # functions among the arguments become callbacks
            if type(arg) is dict or callable(arg):
                span_context = trace.set_span_in_context(span)
                call.args = tuple(_in_context(arg, span_context) for arg in call.args)
                break
        try:
            return await proceed()
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()


_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RANDOM = TraceFlags(0x02)  # W3C trace context level 2: the trace id is random


def _unsampled_remote_dropped(tracer: Tracer) -> Callable[[], int] | None:
    """The SDK tracer's span id generator when its sampler drops every span whose remote
    parent is not sampled (OpenTelemetry's ``ParentBased`` sampler, the default, with its
    default ``remote_parent_not_sampled``); ``None`` for anything else (the API's no-op
    tracer, other samplers): those spans are then left to the tracer."""
    try:
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.sampling import ParentBased
    except ImportError:  # the API alone
        return None
    if type(tracer) is not SdkTracer:
        return None
    sampler = tracer.sampler
    if (
        not isinstance(sampler, ParentBased)
        or type(sampler).should_sample is not ParentBased.should_sample
    ):
        return None
    # the one public way to see the delegate (the SDK leaves the method unannotated)
    description: str = sampler.get_description()  # type: ignore[no-untyped-call]
    if ",remoteParentNotSampled:AlwaysOffSampler," not in description:
        return None
    return tracer.id_generator.generate_span_id


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
