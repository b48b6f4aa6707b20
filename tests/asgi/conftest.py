"""The ASGI tests run the kite's ASGI app in uvicorn (asyncio) and hypercorn (asyncio, trio)."""

from __future__ import annotations

import pytest
from asgi_servers import SETUPS


@pytest.fixture(params=SETUPS, ids=[f"{server}-{backend}" for server, backend in SETUPS])
def asgi_setup(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(asgi_setup: tuple[str, str]) -> str:
    return asgi_setup[1]


@pytest.fixture
def asgi_server(asgi_setup: tuple[str, str]) -> str:
    """``uvicorn`` or ``hypercorn``."""
    return asgi_setup[0]
