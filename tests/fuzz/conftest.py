"""Hypothesis profiles of the fuzz tests: ``ci`` (the default, quick) and ``long``.

``bench/fuzz.py`` runs the same properties under ``long`` (``--hypothesis-profile long``, or
``KITE_FUZZ_PROFILE=long``); ``KITE_FUZZ_EXAMPLES`` overrides the number of examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # 100,000-deep texts take a while to build; time is bench/'s business
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("long", max_examples=5000, **_COMMON)
settings.load_profile(os.environ.get("KITE_FUZZ_PROFILE", "ci"))
if os.environ.get("KITE_FUZZ_EXAMPLES"):
    settings.register_profile(
        "custom",
        parent=settings.get_profile(os.environ.get("KITE_FUZZ_PROFILE", "ci")),
        max_examples=int(os.environ["KITE_FUZZ_EXAMPLES"]),
    )
    settings.load_profile("custom")
