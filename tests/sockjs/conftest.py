"""Test setup for the SockJS plugin.

The plugin is installed (hatch workspace, ``pip install -e``). The I/O tests serve the plugin's
conformance app (:mod:`kite_transport_sockjs.conformance`) on a free port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

# -- live servers (the I/O tests) --------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    """The conformance app with a 5 s heartbeat and a 1 s disconnect delay."""
    from sockjs_helpers import serve_app

    async with serve_app(heartbeat_delay=5.0, disconnect_delay=1.0) as served:
        yield served
