"""Fixtures of the hardening tests: a real kite process to attack, stopped at teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import KiteProcess


@pytest.fixture
def anyio_backend() -> str:
    # the attacks run against a separate process; the test side needs one backend only
    return "asyncio"


@pytest.fixture
async def kite_process(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await kite_process(env={...}, nofile=N)`` starts an attack kite; all stop at teardown."""
    started: list[KiteProcess] = []

    async def start(**options: Any) -> KiteProcess:
        process = KiteProcess(tmp_path, **options)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.stop()
