"""Call spans made without the SDK's ``start_span``, recorded by the same span processors.

Why: ``Tracer.start_span`` + ``Span.end`` of the OpenTelemetry SDK take about 18-21 µs per
recorded span (SDK 1.45, a tight loop; twice that inside a busy kite process), against about
37 µs of CPU for a whole ``square`` call (both ends, 64 in flight). Most of it is generality a
call span does not use: a lock per span, ``BoundedAttributes`` checking every attribute value,
two ``BoundedList``\\ s, the sampler's ``SamplingResult``, ``on_start``/``_on_ending`` calls
that do nothing for the SDK's own processors. :class:`SpanMaker` makes the same span for a
fraction of that: ids from the tracer's ``id_generator``, the decision of its sampler, the
start time; at the end one :class:`~opentelemetry.sdk.trace.ReadableSpan` (the SDK's public
class) with the same name, kind, context, parent, attributes, status, times, resource and
instrumentation scope, handed to the tracer's span processor (``Tracer.span_processor``,
public), as ``Span.end`` does. Unsampled spans are the SDK's ``NonRecordingSpan``.

It is used only when that is exactly what the SDK would do; everything else goes through
``start_span`` (:meth:`SpanMaker.for_tracer` returns ``None``, :meth:`SpanMaker.start`
returns ``None`` for the span at hand):

- the tracer is the SDK's own ``Tracer`` (not a subclass) with the SDK's internal metrics off;
- span limits that cannot cut the plugin's attributes (at least 8 attributes, no value
  length limit: the defaults);
- every span processor's ``on_start`` and ``_on_ending`` are the no-ops of ``SpanProcessor``,
  ``SimpleSpanProcessor`` or ``BatchSpanProcessor`` (checked again whenever the provider's
  processors change);
- the tracer is enabled (the SDK's tracer configurator).

It reads four private attributes of the SDK: ``Tracer._span_limits``,
``Tracer._instrumentation_scope``, ``Tracer._tracer_metrics`` and the multi span processor's
``_span_processors`` (plus ``Tracer._is_enabled()`` and the delegates of ``ParentBased``, for
the sampler short cut below), present from SDK 1.25 through 1.45 (the tested version); a
tracer without them is left to the SDK. The plugin's ``sdk`` extra is pinned below 2.

The sampler: its own ``should_sample`` in general. For the SDK's ``ALWAYS_ON``,
``ALWAYS_OFF``, ``TraceIdRatioBased`` and ``ParentBased`` made of those (the default sampler
is ``ParentBased(ALWAYS_ON)``), the same decision is taken directly from the trace id and the
parent's flags (no ``SamplingResult`` per span): sampled spans get the attributes given and the
parent's trace state, as those samplers give them.

A recorded span (:class:`CallSpan`) is a full ``opentelemetry.trace.Span``: a handler can add
attributes, events and links to the current span, set its status or record an exception, with
the tracer's span limits. It is not thread-safe (the SDK's span takes a lock per change): a
call span belongs to one call on one event loop.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from random import getrandbits
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.util.types import Attributes, AttributeValue

from . import w3c
from .w3c import TUPLE_LAYOUT, span_context

if TYPE_CHECKING:
    from kitecore import Request

__all__ = ["ONLY_PARENT", "CallSpan", "DroppedSpan", "SpanMaker"]

logger = logging.getLogger(__name__)

#: The most attributes the plugin puts on one span (server: 6 + ``error.type``).
_OWN_ATTRIBUTES = 8
_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
_SPAN_ID_MASK = (1 << 64) - 1
#: A sampling "bound" that every trace id is under (ALWAYS_ON) / none is (ALWAYS_OFF).
_ALL = _LIMIT + 1
_NONE = 0
_UNSET = Status(StatusCode.UNSET)
_RECORDING = (Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE)
_ROOT = Context()
#: ``context`` for :meth:`SpanMaker.start`: a context holding only the (remote) parent span.
ONLY_PARENT = Context()
#: W3C trace context level 2's flag (API 1.4x); without it the maker is not used.
_RANDOM: int | None = getattr(TraceFlags, "RANDOM_TRACE_ID", None)
_RANDOM_BIT = _RANDOM or 0
#: The trace flags of a span by their value (sampled: 1, random trace id: 2), made once.
_FLAGS = [TraceFlags(value) for value in range(4)]
#: The ``trace-flags`` text of each of those.
_FLAGS_TEXT = [f"{value:02x}" for value in range(4)]
#: ``on_start``/``_on_ending`` of the SDK's processors that do nothing.
_NO_OPS = frozenset(
    function
    for cls in (SpanProcessor, SimpleSpanProcessor, BatchSpanProcessor)
    for function in (cls.on_start, cls._on_ending)
)


class SpanMaker:
    """Call spans for one SDK tracer (see the module's text). Make it with :meth:`for_tracer`."""

    def __init__(self, tracer: SdkTracer, limits: SpanLimits, scope: Any, multi: Any) -> None:
        self._tracer = tracer
        self._limits = limits
        self._scope = scope
        self._multi = multi
        #: The processors last seen and whether they leave their spans to this maker.
        self._processors: tuple[SpanProcessor, ...] | None = None
        self._plain = False
        self._is_enabled: Callable[[], bool] = getattr(tracer, "_is_enabled", _enabled)
        self._follow(tracer)

    @classmethod
    def for_tracer(cls, tracer: Any) -> SpanMaker | None:
        """A maker for ``tracer`` if it is the SDK's and its spans can be made exactly."""
        if (
            type(tracer) is not SdkTracer
            or not TUPLE_LAYOUT
            or _RANDOM is None
            or not hasattr(tracer.id_generator, "is_trace_id_random")
        ):
            return None
        limits = getattr(tracer, "_span_limits", None)
        scope = getattr(tracer, "_instrumentation_scope", None)
        multi = tracer.span_processor
        if (
            not isinstance(limits, SpanLimits)
            or scope is None
            or type(multi) not in (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
            or not isinstance(getattr(multi, "_span_processors", None), tuple)
            or type(getattr(tracer, "_tracer_metrics", None)).__name__
            not in ("NoneType", "NoOpTracerMetrics")
            or (
                (limits.max_span_attributes is not None)
                and limits.max_span_attributes < _OWN_ATTRIBUTES
            )
            or limits.max_span_attribute_length is not None
        ):
            return None
        return cls(tracer, limits, scope, multi)

    def sample(self, parent: SpanContext | None) -> tuple[int, bool | None] | None:
        """The trace id of a new span with ``parent`` (``None``: it starts a trace) and
        whether the tracer's sampler records it: ``True``/``False`` when decided directly
        from the trace id and the parent's flags (an integer compare), ``None`` when the
        sampler must be asked (:meth:`start` does). ``None`` instead of the pair: the span
        must be left to the SDK's ``start_span``."""
        if not self._ready():
            return None
        bounds = self._bounds
        if parent is None:
            draw = self._getrandbits
            trace_id = (draw is not None and draw(128)) or self._new_trace_id()
            if bounds is None:
                return trace_id, None
            bound = bounds[0]
        else:
            trace_id = parent[0]  # (SpanContext is a tuple: its properties cost a call each)
            if bounds is None:
                return trace_id, None
            sampled = parent[3] & 1
            if parent[2]:  # remote
                bound = bounds[1] if sampled else bounds[2]
            else:
                bound = bounds[3] if sampled else bounds[4]
        return trace_id, trace_id & _LIMIT < bound

    def _ready(self) -> bool:
        """Whether spans can be made here now (else the SDK's ``start_span`` makes them);
        takes a replaced sampler or id generator into account."""
        if self._multi._span_processors is not self._processors:
            self._check_processors()
        if not self._plain or not self._is_enabled():
            return False
        tracer = self._tracer
        if tracer.sampler is not self._sampler or tracer.id_generator is not self._ids:
            self._follow(tracer)
        return True

    def sample_root(self, carrier: MutableMapping[str, str]) -> tuple[int, bool | None] | None:
        """:meth:`sample` for a span that starts a trace (``sample(None)``) and, when the
        sampler drops it, its ``traceparent`` written into ``carrier`` (what
        :meth:`write_unsampled` would write; ``(trace_id, False)`` is then the answer and the
        span id is the header's). With the SDK's random id generator and a sampler decided
        directly, both ids come from one draw, the decision is one integer compare and the
        header is the hex text of that draw: no integer is formatted."""
        if not self._ready():
            return None
        draw = self._getrandbits  # (read after _ready: it follows a replaced generator)
        bounds = self._bounds
        if draw is None or bounds is None:
            return self._sample_root(carrier)
        ids = draw(192)  # the trace id (128 bits) above the span id (64 bits)
        trace_id = ids >> 64
        if not trace_id or not ids & _SPAN_ID_MASK:  # an invalid id: drawn again, as the SDK
            return self._sample_root(carrier)
        if trace_id & _LIMIT < bounds[0]:
            return trace_id, True
        text = ids.to_bytes(24, "big").hex()
        carrier["traceparent"] = f"00-{text[:32]}-{text[32:]}-{_FLAGS_TEXT[self._random_ids]}"
        return trace_id, False

    def _sample_root(self, carrier: MutableMapping[str, str]) -> tuple[int, bool | None] | None:
        """:meth:`sample_root` the general way: :meth:`sample` and :meth:`write_unsampled`."""
        decided = self.sample(None)
        if decided is not None and decided[1] is False:
            self.write_unsampled(carrier, decided[0], None)
        return decided

    def dropped_remote(self, header: str, carrier: Mapping[str, str]) -> Span | None:
        """The span of a served call whose caller sent ``header`` (its ``traceparent``,
        ``carrier`` the metadata holding it) when the sampler drops every span with such a
        remote parent whatever its trace id (``ParentBased``: ``remote_parent_not_sampled``
        is ``ALWAYS_OFF``, the default, for a parent not sampled): a
        :class:`DroppedSpan`. ``None`` for anything else (then parse the header and ask
        :meth:`sample`)."""
        tracer = self._tracer  # (_ready, its usual case inline: once per served call)
        if (
            self._multi._span_processors is not self._processors
            or tracer.sampler is not self._sampler
            or tracer.id_generator is not self._ids
        ):
            if not self._ready():
                return None
        elif not self._plain or not self._is_enabled():
            return None
        # the flags the sampler drops whatever the trace id (a header of another form: no)
        if header[53:] not in self._dropping:
            return None
        if w3c.valid_00(header) is None:  # (w3c.plain_version_00, one call less)
            return None
        state = carrier.get("tracestate")  # (a string entry only, as in call metadata)
        return DroppedSpan(header, state if type(state) is str else None, self._new_span_id)

    def unsampled(
        self, trace_id: int, parent: SpanContext | None, span_id: int | None = None
    ) -> SpanContext:
        """The context of a span :meth:`sample` dropped (what its ``NonRecordingSpan``
        carries): a new span id (or ``span_id``), the parent's trace state, flags not
        sampled."""
        if span_id is None:
            span_id = self._new_span_id()
        if parent is None:
            return span_context(trace_id, span_id, False, _FLAGS[self._random_ids])
        return span_context(trace_id, span_id, False, _FLAGS[parent[3] & _RANDOM_BIT], parent[4])

    def write_unsampled(
        self, carrier: MutableMapping[str, str], trace_id: int, parent: SpanContext | None
    ) -> int:
        """Write the ``traceparent`` (and ``tracestate``) of a span :meth:`sample` dropped
        into ``carrier``, as :meth:`unsampled` would make its context (without making it);
        its span id."""
        draw = self._getrandbits
        span_id = (draw is not None and draw(64)) or self._new_span_id()
        if parent is None:
            carrier["traceparent"] = "00-%032x-%016x-%s" % (  # noqa: UP031 (w3c.write, inline)
                trace_id,
                span_id,
                _FLAGS_TEXT[self._random_ids],
            )
        else:
            w3c.write(carrier, trace_id, span_id, parent[3] & _RANDOM_BIT, parent[4])
        return span_id

    def start(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
        parent: SpanContext | None,
        context: Context | None,
        request: Request | None = None,
        decided: tuple[int, bool | None] | None = None,
    ) -> Span | None:
        """A started span: recorded (:class:`CallSpan`) or not (``NonRecordingSpan``), as the
        tracer's sampler decides; ``None`` when it must be left to the SDK's ``start_span``.

        ``parent`` is the valid parent span context (``None``: the span starts a trace);
        ``context`` is what the SDK's ``start_span`` would get (``None``: the current context;
        :data:`ONLY_PARENT`: a context holding only ``parent``), given to a sampler that is
        not decided directly. ``attributes`` are not copied: don't change them afterwards.
        ``request`` (a served call's): its id is added as ``kite.request_id`` (read only when
        the attributes are needed, for a recorded span or such a sampler: it is made on first
        read). ``decided``: what :meth:`sample` gave for ``parent``, if it was asked already
        (the trace id it drew must be the span's).
        """
        if decided is None:
            decided = self.sample(parent)
            if decided is None:
                return None
        trace_id, sampled = decided
        if parent is None:
            random = self._random_ids
            trace_state = None
        else:
            random = parent.trace_flags & _RANDOM_BIT
            trace_state = parent.trace_state
        if sampled is not None:
            if not sampled:
                return NonRecordingSpan(self.unsampled(trace_id, parent))
            record = sample = True
            if request is not None:
                attributes = {**attributes, "kite.request_id": request.id}
        else:
            tracer = self._tracer
            if request is not None:
                attributes = {**attributes, "kite.request_id": request.id}
            if context is ONLY_PARENT:
                context = _ROOT if parent is None else set_span_in_context(NonRecordingSpan(parent))
            result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes, ())
            record = result.decision in _RECORDING
            sample = result.decision is Decision.RECORD_AND_SAMPLE
            trace_state = result.trace_state
            if record:
                attributes = result.attributes or {}
        context_of_span = span_context(
            trace_id, self._new_span_id(), False, _FLAGS[sample | random], trace_state
        )
        if not record:
            return NonRecordingSpan(context_of_span)
        return CallSpan(self, name, kind, context_of_span, parent, attributes)

    def _follow(self, tracer: SdkTracer) -> None:
        """Take the tracer's sampler and id generator (again, when one was replaced: the SDK
        reads them at every span)."""
        self._sampler = tracer.sampler
        #: Sampling bounds (root, remote sampled, remote not, local sampled, local not) of a
        #: sampler decided directly; ``None``: ask the sampler.
        self._bounds: tuple[int, int, int, int, int] | None = _bounds(tracer.sampler)
        bounds = self._bounds
        #: The ``trace-flags`` texts of a remote parent whose children the sampler drops
        #: whatever their trace id (:meth:`dropped_remote`).
        self._dropping: frozenset[str] = frozenset(
            ()
            if bounds is None
            else (
                text
                for text, flags in w3c.FLAGS.items()
                if (bounds[1] if flags & 1 else bounds[2]) == _NONE
            )
        )
        ids = self._ids = tracer.id_generator
        self._new_trace_id = ids.generate_trace_id
        self._new_span_id = ids.generate_span_id
        #: The SDK's random generator: its ids are drawn here directly (the same draws).
        self._getrandbits = getrandbits if type(ids) is RandomIdGenerator else None
        self._random_ids = _RANDOM_BIT if ids.is_trace_id_random() else 0

    def _check_processors(self) -> None:
        """The provider's processors changed: see whether they leave the spans to us."""
        processors = self._processors = self._multi._span_processors
        self._plain = all(
            type(p).on_start in _NO_OPS and type(p)._on_ending in _NO_OPS for p in processors
        )


def _enabled() -> bool:
    return True


def _bounds(sampler: Sampler) -> tuple[int, int, int, int, int] | None:
    """The sampling bound of each case, for a sampler whose decision is a comparison of the
    trace id with a bound (``None`` for any other sampler)."""
    if type(sampler) is ParentBased:
        delegates = [
            getattr(sampler, name, None)
            for name in (
                "_root",
                "_remote_parent_sampled",
                "_remote_parent_not_sampled",
                "_local_parent_sampled",
                "_local_parent_not_sampled",
            )
        ]
        bounds = [_bound(delegate) for delegate in delegates]
        if None in bounds:
            return None
        root, remote_sampled, remote_not, local_sampled, local_not = bounds
        assert root is not None and remote_sampled is not None and remote_not is not None
        assert local_sampled is not None and local_not is not None
        return root, remote_sampled, remote_not, local_sampled, local_not
    bound = _bound(sampler)
    return None if bound is None else (bound,) * 5


def _bound(sampler: Any) -> int | None:
    if sampler is ALWAYS_ON:
        return _ALL
    if sampler is ALWAYS_OFF:
        return _NONE
    if type(sampler) is TraceIdRatioBased:
        return sampler.bound
    return None


class DroppedSpan(NonRecordingSpan):
    """The span of a served call the sampler dropped, child of the caller's span (a W3C
    ``traceparent``). Its context, what the SDK's ``NonRecordingSpan`` would carry (the
    caller's trace id and trace state, a span id of its own, flags: not sampled, the caller's
    random-trace-id flag), is made when first read: most calls never read it (only a call
    the handler makes, or code asking for the current span, does)."""

    __slots__ = ("_header", "_made", "_new_span_id", "_trace_state")

    def __init__(
        self, header: str, trace_state: str | None, new_span_id: Callable[[], int]
    ) -> None:
        self._header = header
        self._trace_state = trace_state
        self._new_span_id = new_span_id
        self._made: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        made = self._made
        if made is None:
            header, state = self._header, self._trace_state
            made = self._made = span_context(
                int(header[3:35], 16),
                self._new_span_id(),
                False,
                _FLAGS[w3c.FLAGS[header[53:55]] & _RANDOM_BIT],
                TraceState.from_header([state]) if state else None,
            )
        return made

    def __repr__(self) -> str:
        return f"DroppedSpan({self.get_span_context()!r})"


class CallSpan(Span):
    """A recorded span of a call (see the module's text); ended, it is handed to the span
    processor as an SDK ``ReadableSpan``."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_kind",
        "_links",
        "_maker",
        "_name",
        "_own",
        "_parent",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        maker: SpanMaker,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._maker = maker
        self._name = name
        self._kind = kind
        self._context = context
        self._parent = parent
        self._start_time = time_ns()
        self._end_time: int | None = None
        #: Shared with other spans until :attr:`_own` (then a ``BoundedAttributes``).
        self._attributes: Mapping[str, AttributeValue] = attributes
        self._own = False
        self._status = _UNSET
        self._events: BoundedList[Event] | Sequence[Event] = ()
        self._links: BoundedList[Link] | Sequence[Link] = ()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        logger.warning("Tried calling %s on an ended span.", what)
        return True

    def _own_attributes(self) -> BoundedAttributes:
        attributes = self._attributes
        if not self._own:
            limits = self._maker._limits
            attributes = self._attributes = BoundedAttributes(
                limits.max_span_attributes,
                attributes,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
            self._own = True
        assert isinstance(attributes, BoundedAttributes)
        return attributes

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        self._own_attributes()[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        own = self._own_attributes()
        for key, value in attributes.items():
            own[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._ended("_add_event"):
            return
        limits = self._maker._limits
        if not isinstance(self._events, BoundedList):
            self._events = BoundedList(limits.max_events)
        bounded = self._bounded(limits.max_event_attributes, attributes)
        self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._ended("_add_link") or context is None or (not context.is_valid and not attributes):
            return
        limits = self._maker._limits
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList(limits.max_links)
        bounded = self._bounded(limits.max_link_attributes, attributes)
        self._links.append(Link(context=context, attributes=bounded))

    def _bounded(self, max_attributes: int | None, attributes: Attributes) -> BoundedAttributes:
        """An event's or a link's attributes, cut to the tracer's limits as the SDK does."""
        return BoundedAttributes(
            max_attributes,
            attributes,
            max_value_len=self._maker._limits.max_attribute_length,
            immutable=True,
        )

    def update_name(self, name: str) -> None:
        if not self._ended("update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("set_status"):
            return
        # as the SDK: a status OK is final, UNSET never replaces one
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                logger.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # the event the SDK's Span.record_exception adds
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, AttributeValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time = time_ns() if end_time is None else end_time
        maker = self._maker
        tracer = maker._tracer
        maker._multi.on_end(
            ReadableSpan(
                self._name,
                self._context,
                self._parent,
                tracer.resource,
                self._attributes,
                self._events,
                self._links,
                self._kind,
                tracer.instrumentation_info,
                self._status,
                self._start_time,
                end_time,
                maker._scope,
            )
        )

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'
