"""kitecore.storage.batch: concurrent writes sent together, each with its own outcome."""

from __future__ import annotations

import anyio
import pytest

from kitecore.storage.batch import MAX_BATCH, Batcher

pytestmark = pytest.mark.anyio


class Server:
    """A fake storage server: records each batch, answers after ``gate`` opens."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.gate = anyio.Event()
        self.gate.set()
        self.fail_on: str | None = None

    async def send(self, items: list[tuple[str, int]]) -> list[str]:
        self.batches.append(items)
        await self.gate.wait()
        if self.fail_on is not None and any(key == self.fail_on for key, _ in items):
            raise RuntimeError("refused")
        return [f"{key}:{value}" for key, value in items]


def make_batcher(server: Server) -> Batcher[tuple[str, int], str]:
    return Batcher(server.send, group=lambda item: item[1] % 2, key=lambda item: item[0])


async def test_a_lone_write_goes_at_once():
    server = Server()
    batcher = make_batcher(server)
    assert await batcher.submit(("a", 2)) == "a:2"
    assert server.batches == [[("a", 2)]]


async def test_writes_arriving_meanwhile_share_the_next_batch():
    server = Server()
    batcher = make_batcher(server)
    server.gate = anyio.Event()
    results: dict[str, str] = {}

    async def write(key: str, value: int) -> None:
        results[key] = await batcher.submit((key, value))

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, "first", 0)
        await anyio.wait_all_tasks_blocked()  # "first" is in flight
        for i in range(MAX_BATCH + 5):
            tg.start_soon(write, f"k{i}", 2)
        tg.start_soon(write, "k0", 4)  # the same key again: never twice in one batch
        tg.start_soon(write, "odd", 1)  # another group
        await anyio.wait_all_tasks_blocked()
        server.gate.set()
    assert results["first"] == "first:0" and results["odd"] == "odd:1"
    assert results["k0"] in ("k0:2", "k0:4")
    assert all(results[f"k{i}"] == f"k{i}:2" for i in range(1, MAX_BATCH + 5))
    assert server.batches[0] == [("first", 0)]
    assert max(len(batch) for batch in server.batches) == MAX_BATCH
    for batch in server.batches:
        assert len({key for key, _ in batch}) == len(batch)
        assert len({value % 2 for _, value in batch}) == 1
    assert len(server.batches) <= 5


async def test_a_failed_batch_fails_its_writes_only():
    server = Server()
    batcher = make_batcher(server)
    server.gate = anyio.Event()
    server.fail_on = "bad"
    outcomes: dict[str, object] = {}

    async def write(key: str) -> None:
        try:
            outcomes[key] = await batcher.submit((key, 0))
        except RuntimeError as exc:
            outcomes[key] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, "alone")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(write, "bad")
        tg.start_soon(write, "with-bad")
        await anyio.wait_all_tasks_blocked()
        server.gate.set()
    assert outcomes["alone"] == "alone:0"
    assert isinstance(outcomes["bad"], RuntimeError)
    assert isinstance(outcomes["with-bad"], RuntimeError)
    assert await batcher.submit(("after", 0)) == "after:0"


async def test_cancelled_callers_block_nobody():
    server = Server()
    batcher = make_batcher(server)
    server.gate = anyio.Event()
    done: dict[str, str] = {}
    leader_scope = anyio.CancelScope()

    async def write(key: str) -> None:
        done[key] = await batcher.submit((key, 0))

    async def lead() -> None:
        with leader_scope:  # the sender's caller gives up: its batch is seen through
            await write("leader")

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await anyio.wait_all_tasks_blocked()
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(write, "gone")
            await anyio.wait_all_tasks_blocked()
            waiting.cancel_scope.cancel()  # a waiting caller gives up
        tg.start_soon(write, "next")
        await anyio.wait_all_tasks_blocked()
        leader_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        server.gate.set()
    assert done["next"] == "next:0"
    sent = [item for batch in server.batches for item in batch]
    assert ("leader", 0) in sent and ("gone", 0) not in sent
    assert await batcher.submit(("later", 0)) == "later:0"


async def test_a_caller_cancelled_as_it_is_promoted_hands_the_role_on():
    """The leader finishes and promotes the first waiting caller, which is cancelled before it
    runs: the role goes to the next one (the cancelled caller must not promote itself)."""
    server = Server()
    batcher = make_batcher(server)
    server.gate = anyio.Event()
    promoted_scope = anyio.CancelScope()
    done: dict[str, str] = {}
    next_done = anyio.Event()

    async def write(key: str) -> None:
        done[key] = await batcher.submit((key, 0))
        if key == "next":
            next_done.set()

    async def promoted() -> None:
        with promoted_scope:
            await write("promoted")

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, "leader")
        await anyio.wait_all_tasks_blocked()  # "leader" is in flight alone
        tg.start_soon(promoted)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(write, "next")
        await anyio.wait_all_tasks_blocked()
        # only "leader" was sent; the others wait. Let it finish, and cancel the first waiter
        # in the same step, so it wakes up promoted and cancelled at once
        server.gate.set()
        promoted_scope.cancel()
        with anyio.fail_after(5):
            await next_done.wait()
    assert done["leader"] == "leader:0" and done["next"] == "next:0"
    assert "promoted" not in done
    assert await batcher.submit(("later", 0)) == "later:0"


class Interrupt(BaseException):
    """Not an ``Exception``: what a KeyboardInterrupt or a closing generator looks like."""


async def test_an_interrupted_batch_wakes_its_other_writers_with_an_error():
    server = Server()
    batcher = make_batcher(server)
    server.gate = anyio.Event()
    interrupted = False

    async def interrupting_send(items: list[tuple[str, int]]) -> list[str]:
        if len(items) > 1:
            raise Interrupt
        return await Server.send(server, items)

    batcher._send = interrupting_send
    errors: dict[str, BaseException] = {}

    async def write(key: str) -> None:
        nonlocal interrupted
        try:
            await batcher.submit((key, 0))
        except Interrupt:
            interrupted = True
        except RuntimeError as exc:
            errors[key] = exc

    with anyio.fail_after(5):  # a guard against the hang this is about, not a timing
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "first")
            await anyio.wait_all_tasks_blocked()
            for key in ("a", "b", "c"):
                tg.start_soon(write, key)
            await anyio.wait_all_tasks_blocked()
            server.gate.set()
    assert interrupted  # the sender of the interrupted batch sees the interrupt itself
    assert len(errors) == 2 and all("interrupted" in str(exc) for exc in errors.values())
    assert all(isinstance(exc.__cause__, Interrupt) for exc in errors.values())
    assert await batcher.submit(("after", 0)) == "after:0"  # and the batcher still works
