"""Shared test configuration: every async test runs on asyncio and trio."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tls_certs import TLSFiles


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throwaway CA with server (127.0.0.1, localhost) and client certificates
    (``tests/tls_certs.py``)."""
    from tls_certs import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """The cycle collector off for the test: what is freed is freed by reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def quick_crowd_release(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``quick_crowd_release(peak, delay=0.01)``: a server's memory release after a crowd of
    connections (``kitecore.http.server``), seen within a test: ``peak`` connections make a
    crowd, and its two steps wait 0.01 s for the closes to settle and ``delay`` s (beside the
    close timeout) between them."""
    from kitecore.http import limits
    from kitecore.http import server as server_module

    def set_up(peak: int, delay: float = 0.01) -> None:
        monkeypatch.setattr(limits, "_TRIM_PEAK", peak)
        monkeypatch.setattr(server_module, "_RELEASE_STEADY", 0.01)
        monkeypatch.setattr(server_module, "_RELEASE_DELAY", delay)

    return set_up


@pytest.fixture
def release_times(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the server's release after a crowd gives memory back (``release_free_memory``,
    replaced: it records the time and gives nothing back)."""
    import anyio

    from kitecore.http import server as server_module

    times: list[float] = []
    monkeypatch.setattr(
        server_module, "release_free_memory", lambda: times.append(anyio.current_time())
    )
    return times
