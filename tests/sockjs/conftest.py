"""Test setup for the SockJS plugin.

The plugin is importable when installed (hatch workspace, ``pip install -e``); from a bare
checkout its ``src`` directory is put on ``sys.path`` so these sans-IO tests still run. (Installing
it editable before its ``plugin`` module exists would register a broken entry point.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("kite_transport_sockjs") is None:
    _SRC = Path(__file__).resolve().parents[2] / "plugins" / "kite-transport-sockjs" / "src"
    sys.path.insert(0, str(_SRC))
