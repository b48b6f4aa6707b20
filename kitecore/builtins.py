"""The methods every kite serves (protocol.md §4).

Authentication (docs/limits.md, "Built-ins"): ``kite.ping`` is open to everyone;
``kite.log``, ``kite.print``, ``kite.prompt`` and ``kite.getPass`` write to this process's log or
terminal or read from it, so they always need an authenticated caller, even with
``config.disable_authentication`` (as in Go, whose built-ins are registered before the config
can relax them); ``kite.systemInfo`` and ``kite.heartbeat`` follow
``config.disable_authentication``. Calls over a connection this kite dialed (Kontrol asking for
heartbeats) are trusted as always. To open one of the guarded methods anyway, register it again
with ``auth=False``.
"""

from __future__ import annotations

import getpass
import logging
import math
import platform
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from kitecore.protocol.errors import ArgumentError

if TYPE_CHECKING:
    from kitecore.kite import Kite
    from kitecore.request import Request

logger = logging.getLogger(__name__)


async def ping(r: Request) -> str:
    return "pong"


def _memory() -> tuple[int, int]:
    """(used, total) bytes of memory, from /proc/meminfo where there is one."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            fields[key] = int(rest.split()[0]) * 1024
        total = fields["MemTotal"]
        return total - fields.get("MemAvailable", fields.get("MemFree", 0)), total
    except (OSError, KeyError, ValueError, IndexError):
        return 0, 0


def system_info() -> dict[str, Any]:
    """What ``kite.systemInfo`` answers: disk in KiB, memory in bytes."""
    home = str(Path.home())
    try:
        disk = shutil.disk_usage(home)
        disk_usage, disk_total = disk.used // 1024, disk.total // 1024
    except OSError:
        disk_usage = disk_total = 0
    used, total = _memory()
    return {
        "state": "RUNNING",
        "diskUsage": disk_usage,
        "diskTotal": disk_total,
        "memoryUsage": used,
        "totalMemoryLimit": total,
        "homeDir": home,
        "uname": platform.system().lower(),
    }


async def system_info_handler(r: Request) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(system_info)


class Heartbeat:
    """``kite.heartbeat [interval, ping]``: ping now, then every interval seconds.

    One ticker per connection: a new heartbeat request replaces the one running for the same
    connection (Go keeps one per kite; per connection lets several Kontrols each keep theirs).
    From peers that dialed this kite, intervals below ``config.min_heartbeat_interval`` are
    raised to it, so a peer cannot make the kite send callbacks in a tight loop; a peer this
    kite dialed (Kontrol, a proxy) is trusted as for authentication and gets the interval it
    asks for. The ticker stops when its connection drops.
    """

    def __init__(self) -> None:
        self._scopes: dict[int, anyio.CancelScope] = {}

    @property
    def running(self) -> int:
        """How many tickers run (one at most per connection)."""
        return len(self._scopes)

    async def __call__(self, r: Request) -> None:
        interval = r.args.number(0)
        ping_back = r.args.function(1)
        if not math.isfinite(interval) or interval <= 0:
            raise ArgumentError("heartbeat interval must be positive")
        connection = r.client.connection
        if connection is None:
            return None
        minimum = r.local_kite.config.min_heartbeat_interval
        if interval < minimum and not connection.dialed:
            logger.debug("heartbeat interval %s raised to the minimum %s", interval, minimum)
            interval = minimum
        key = id(connection)
        previous = self._scopes.pop(key, None)
        if previous is not None:
            previous.cancel()
        scope = anyio.CancelScope()
        self._scopes[key] = scope
        connection.spawn(self._tick, key, scope, interval, ping_back)
        return None

    async def _tick(
        self, key: int, scope: anyio.CancelScope, interval: float, ping_back: Any
    ) -> None:
        try:
            with scope:
                while True:
                    try:
                        ping_back()
                    except Exception as exc:  # the connection went away
                        logger.debug("heartbeat stopped: %s", exc)
                        return
                    await anyio.sleep(interval)
        finally:
            if self._scopes.get(key) is scope:
                del self._scopes[key]


async def log_message(r: Request) -> None:
    message = r.args.string(0)
    caller = r.kite.name if r.kite else r.username or "?"
    logger.info("%s: %s", caller, message)
    return None


async def print_message(r: Request) -> int:
    message = r.args.string(0)
    data = (message + "\n").encode()
    sys.stdout.write(message + "\n")
    sys.stdout.flush()
    return len(data)


def _read_token(prompt: str) -> str:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    parts = line.split()
    return parts[0] if parts else ""


async def prompt(r: Request) -> str:
    return await anyio.to_thread.run_sync(_read_token, r.args.string(0), abandon_on_cancel=True)


async def get_pass(r: Request) -> str:
    return await anyio.to_thread.run_sync(getpass.getpass, r.args.string(0), abandon_on_cancel=True)


#: Built-ins that touch this process's log or terminal: authenticated even when
#: ``config.disable_authentication`` is set.
ALWAYS_AUTHENTICATED = ("kite.log", "kite.print", "kite.prompt", "kite.getPass")


def register_builtins(kite: Kite) -> None:
    """Add the built-in methods to ``kite`` (see the module docstring for who may call them)."""
    kite.handle("kite.ping", ping, auth=False)
    kite.handle("kite.systemInfo", system_info_handler)
    kite.handle("kite.heartbeat", Heartbeat())
    kite.handle("kite.log", log_message, auth=True)
    kite.handle("kite.print", print_message, auth=True)
    kite.handle("kite.prompt", prompt, auth=True)
    kite.handle("kite.getPass", get_pass, auth=True)


__all__ = ["ALWAYS_AUTHENTICATED", "Heartbeat", "register_builtins", "system_info"]
