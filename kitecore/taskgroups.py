"""A task group owned by one object for as long as it is open (``async with kite``, a client's
or a pool's context...), rather than by one ``async with`` block of code.

The owner opens it in its ``__aenter__`` and closes it in its ``__aexit__`` (and when its
``__aenter__`` fails half-way); closing cancels every task started in it and waits for them.
anyio requires the task that opened a task group to close it, as ``async with`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup

__all__ = ["OwnedTaskGroup"]


class OwnedTaskGroup:
    """``await open()`` / ``start_soon(...)`` / ``await aclose()``: see the module docs."""

    __slots__ = ("_group",)

    def __init__(self) -> None:
        self._group: TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<OwnedTaskGroup {'open' if self._group is not None else 'closed'}>"

    @property
    def group(self) -> TaskGroup | None:
        """The open task group (to hand to objects whose tasks live as long), else None."""
        return self._group

    async def open(self) -> TaskGroup:
        """Enter a fresh task group; RuntimeError if one is open already."""
        if self._group is not None:
            raise RuntimeError("this task group is open already")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return group

    def start_soon(
        self, function: Callable[..., Coroutine[Any, Any, object]], *args: object
    ) -> None:
        """Run ``function(*args)`` in the group; RuntimeError when it is not open."""
        if self._group is None:
            raise RuntimeError("this task group is not open")
        self._group.start_soon(function, *args)

    async def aclose(self) -> None:
        """Cancel the group's tasks and wait for them to end. Idempotent.

        An exception the owner's block raised is not passed in: it propagates as it is, never
        wrapped in an exception group together with the cancelled tasks.
        """
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
