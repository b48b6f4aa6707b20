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
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider

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
        service = call.kite.name
        method = call.method
        attributes: dict[str, Any] = {
            "rpc.system": _SYSTEM,
            "rpc.service": service,
            "rpc.method": method,
            "kite.request_id": call.request.id,
        }
        address = call.peer.remote_address
        if address:
            host, _, port = address.rpartition(":")
            if host and port.isdigit():
                attributes["network.peer.address"] = host.strip("[]")
                attributes["network.peer.port"] = int(port)
            else:
                attributes["network.peer.address"] = address
        span = self.tracer.start_span(
            f"{service}/{method}", context=parent, kind=SpanKind.SERVER, attributes=attributes
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

    async def client_interceptor(self, call: ClientCall, proceed: Proceed) -> Any:
        """A ``CLIENT`` span around one ``tell``; its context goes out in the metadata."""
        client = call.client
        remote = client.remote_kite
        service = remote.name if remote is not None else ""
        method = call.method
        attributes: dict[str, Any] = {
            "rpc.system": _SYSTEM,
            "rpc.service": service,
            "rpc.method": method,
        }
        url = client.url
        if url:
            attributes.update(_server_attributes(url))
        span = self.tracer.start_span(
            f"{service or _SYSTEM}/{method}", kind=SpanKind.CLIENT, attributes=attributes
        )
        span_context = trace.set_span_in_context(span)
        if self.propagator is None:
            w3c.inject(call.metadata, span.get_span_context())
        else:
            self.propagator.inject(call.metadata, context=span_context)
        if any(callable(arg) or type(arg) is dict for arg in call.args):
            call.args = tuple(_in_context(arg, span_context) for arg in call.args)
        try:
            return await proceed()
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()


@functools.lru_cache(maxsize=1024)
def _server_attributes(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a kite URL (parsed once per URL)."""
    parts = urlsplit(url)
    found: dict[str, Any] = {}
    if parts.hostname:
        found["server.address"] = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        found["server.port"] = port
    return found


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
