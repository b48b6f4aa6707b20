"""The methods every kite serves (protocol.md §4)."""

from __future__ import annotations

import getpass
import logging
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

    One ticker per kite: a new heartbeat request replaces the running one. The ticker
    stops when the connection it was asked on drops.
    """

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None

    async def __call__(self, r: Request) -> None:
        interval = r.args.number(0)
        ping_back = r.args.function(1)
        if interval <= 0:
            raise ArgumentError("heartbeat interval must be positive")
        if self._scope is not None:
            self._scope.cancel()
        connection = r.client.connection
        if connection is None:
            return None
        scope = anyio.CancelScope()
        self._scope = scope
        connection.spawn(self._tick, scope, interval, ping_back)
        return None

    async def _tick(self, scope: anyio.CancelScope, interval: float, ping_back: Any) -> None:
        with scope:
            while True:
                try:
                    ping_back()
                except Exception as exc:  # the connection went away
                    logger.debug("heartbeat stopped: %s", exc)
                    return
                await anyio.sleep(interval)


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


def register_builtins(kite: Kite) -> None:
    """Add the built-in methods to ``kite``. Only ``kite.ping`` is open to everyone."""
    kite.handle("kite.ping", ping, auth=False)
    kite.handle("kite.systemInfo", system_info_handler)
    kite.handle("kite.heartbeat", Heartbeat())
    kite.handle("kite.log", log_message)
    kite.handle("kite.print", print_message)
    kite.handle("kite.prompt", prompt)
    kite.handle("kite.getPass", get_pass)


__all__ = ["register_builtins", "system_info"]
