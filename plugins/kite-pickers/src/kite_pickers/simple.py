"""The pickers that do not learn: ``random`` and ``round_robin``.

They are the core's own (:mod:`kitecore.pickers`), registered again by this plugin under the
same names so that ``kite plugins`` lists every picker a pool can use in one place.
"""

from __future__ import annotations

from kitecore.pickers import RandomPicker, RoundRobinPicker

__all__ = ["RandomPicker", "RoundRobinPicker"]
