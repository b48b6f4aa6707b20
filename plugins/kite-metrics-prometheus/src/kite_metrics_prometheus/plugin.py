"""The ``metrics`` kite plugin: Prometheus metrics for every kite that opts in.

Off by default. A kite opts in with the environment variable ``KITE_METRICS`` or its
config's ``extra["metrics"]``: ``1``/``true``/``on`` serves ``/metrics``, a value starting
with ``/`` serves that path instead, ``0``/``false``/``off`` (or unset) does nothing. The
metrics go to ``prometheus_client``'s global registry (so a process's other metrics show
beside them); to use a registry of your own, leave the variable unset and call
:meth:`KiteMetrics.install <kite_metrics_prometheus.KiteMetrics.install>` yourself.
"""

from __future__ import annotations

import os
import threading

from kitecore import Kite, hookimpl
from kitecore.hookspecs import InterceptorRegister

from .metrics import KiteMetrics

__all__ = ["ENV", "default_metrics", "kite_register_interceptors", "metrics_path"]

#: The environment variable that turns metrics on for every kite of the process.
ENV = "KITE_METRICS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_default: KiteMetrics | None = None
_lock = threading.Lock()


def default_metrics() -> KiteMetrics:
    """The process-wide :class:`KiteMetrics` on ``prometheus_client``'s global registry."""
    global _default
    with _lock:
        if _default is None:
            _default = KiteMetrics()
        return _default


def metrics_path(kite: Kite) -> str | None:
    """The path ``kite`` serves metrics at, or ``None`` when metrics are off for it."""
    value = kite.config.extra.get("metrics")
    if value is None:
        value = os.environ.get(ENV, "")
    value = value.strip()
    if value.startswith("/"):
        return value
    if value.lower() in _TRUE:
        return "/metrics"
    if value.lower() not in _FALSE:
        raise ValueError(
            f"{ENV}/extra['metrics'] must be 1, 0 or a path like /metrics, not {value!r}"
        )
    return None


@hookimpl
def kite_register_interceptors(kite: Kite, register: InterceptorRegister) -> None:
    """Count the calls and connections of a kite that opted in, and serve ``/metrics``."""
    path = metrics_path(kite)
    if path is None:
        return
    metrics = default_metrics()
    metrics.install(kite)
    metrics.serve(kite, path)
