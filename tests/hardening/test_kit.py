"""The hardening kit itself: the attack kite serves, answers square and reports its memory."""

from __future__ import annotations

import pytest
from hardening_helpers import square_answered

pytestmark = pytest.mark.anyio


async def test_attack_kite_serves_square_and_reports_memory(kite_process) -> None:
    kite = await kite_process()
    assert await square_answered(kite.url)
    assert kite.alive
    assert 5 * 2**20 < kite.rss() < 500 * 2**20


async def test_descriptor_limit_applies_to_the_kite(kite_process) -> None:
    kite = await kite_process(nofile=200)
    assert kite.proc_status("Max open files")[:2] == ["200", "200"]
    assert await square_answered(kite.url)
