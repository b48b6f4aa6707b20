"""OwnedTaskGroup: the task group a kite, client, pool, Kontrol client or watch owns while open."""

from __future__ import annotations

import anyio
import pytest

from kitecore.taskgroups import OwnedTaskGroup

pytestmark = pytest.mark.anyio


async def test_close_cancels_the_tasks_and_waits_for_them() -> None:
    tasks = OwnedTaskGroup()
    assert tasks.group is None
    running, ended = anyio.Event(), anyio.Event()

    async def forever() -> None:
        try:
            running.set()
            await anyio.sleep_forever()
        finally:
            ended.set()

    await tasks.open()
    assert tasks.group is not None
    tasks.start_soon(forever)
    await running.wait()
    await tasks.aclose()
    assert ended.is_set() and tasks.group is None
    await tasks.aclose()  # idempotent


async def test_misuse_is_a_clear_error() -> None:
    tasks = OwnedTaskGroup()

    async def nothing() -> None:
        pass

    with pytest.raises(RuntimeError, match="not open"):
        tasks.start_soon(nothing)
    await tasks.open()
    try:
        with pytest.raises(RuntimeError, match="open already"):
            await tasks.open()
    finally:
        await tasks.aclose()
    with pytest.raises(RuntimeError, match="not open"):
        tasks.start_soon(nothing)


async def test_the_owners_exception_is_not_wrapped_in_a_group() -> None:
    class Owner:
        def __init__(self) -> None:
            self.tasks = OwnedTaskGroup()

        async def __aenter__(self) -> Owner:
            await self.tasks.open()
            self.tasks.start_soon(anyio.sleep_forever)
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            await self.tasks.aclose()

    with pytest.raises(KeyError, match="mine"):
        async with Owner():
            raise KeyError("mine")
