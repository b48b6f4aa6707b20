"""Peer pickers for kite pools: ``random``, ``round_robin``, ``fastest``, ``least_latency``.

>>> pool = kite.pool("alice/production/math", picker="least_latency")
"""

from .fastest import FastestPicker
from .least_latency import LeastLatencyPicker
from .simple import RandomPicker, RoundRobinPicker

__version__ = "0.1.0"

__all__ = ["FastestPicker", "LeastLatencyPicker", "RandomPicker", "RoundRobinPicker"]
