"""The ``tracing`` kite plugin: OpenTelemetry spans for every kite that opts in.

Off by default. A kite opts in with the environment variable ``KITE_TRACING`` or its config's
``extra["tracing"]`` set to ``1``/``true``/``on``. Spans go to OpenTelemetry's global tracer
provider: set one up with the SDK (and an exporter) before the kites are made. For a provider
of your own, leave the variable unset and call
:meth:`KiteTracing.install <kite_tracing_otel.KiteTracing.install>` yourself.
"""

from __future__ import annotations

import os

from kitecore import Kite, hookimpl
from kitecore.hookspecs import InterceptorRegister

from .tracing import KiteTracing

__all__ = ["ENV", "kite_register_interceptors", "tracing_enabled"]

#: The environment variable that turns tracing on for every kite of the process.
ENV = "KITE_TRACING"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def tracing_enabled(kite: Kite) -> bool:
    """Whether ``kite`` asked for tracing (``extra["tracing"]``, else ``KITE_TRACING``)."""
    value = kite.config.extra.get("tracing")
    if value is None:
        value = os.environ.get(ENV, "")
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{ENV}/extra['tracing'] must be 1 or 0, not {value!r}")


@hookimpl
def kite_register_interceptors(kite: Kite, register: InterceptorRegister) -> None:
    """Trace the calls of a kite that opted in, on the global tracer provider."""
    if tracing_enabled(kite):
        KiteTracing().install(kite)
