"""Names the Kontrol tests share (a module of its own: conftest is not importable).

They come from the Kontrol test kit, :mod:`kite_kontrol.testing`.
"""

from __future__ import annotations

from kite_kontrol.testing import KONTROL_USER, foreign_kite_key, kite_key
from kite_kontrol.testing import REGISTRATION_SECRET as SECRET

__all__ = ["KONTROL_USER", "SECRET", "foreign_kite_key", "kite_key"]
