"""OpenTelemetry tracing for kite for Python (the ``tracing`` plugin).

:class:`KiteTracing` makes a span per call served and per call made, and carries W3C trace
context between kites in the request's call metadata. The plugin module installs it on every
kite when ``KITE_TRACING=1``.
"""

from .plugin import ENV, tracing_enabled
from .tracing import INSTRUMENTATION_NAME, KiteTracing

__all__ = ["ENV", "INSTRUMENTATION_NAME", "KiteTracing", "tracing_enabled"]
