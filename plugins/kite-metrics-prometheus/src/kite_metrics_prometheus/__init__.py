"""Prometheus metrics for kite for Python (the ``metrics`` plugin).

:class:`KiteMetrics` holds the metrics; :meth:`KiteMetrics.install` attaches them to a kite
through the core's interceptors and :meth:`KiteMetrics.serve` adds ``GET /metrics`` to the
kite's own HTTP server. The plugin module does both for every kite when ``KITE_METRICS=1``.
"""

from .exposition import metrics_handler
from .kontrol import KontrolMetrics
from .metrics import LATENCY_BUCKETS, KiteMetrics
from .plugin import ENV, default_metrics, metrics_path

__all__ = [
    "ENV",
    "LATENCY_BUCKETS",
    "KiteMetrics",
    "KontrolMetrics",
    "default_metrics",
    "metrics_handler",
    "metrics_path",
]
