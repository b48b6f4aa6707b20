"""The hardening tests' kit: a real kite process to attack, its memory, a normal caller.

Every hardening test does the same three things after its attack: the process is still
alive, another client's ``square`` call is answered, and the process's resident memory stays
under a stated bound. :class:`KiteProcess` gives the first two and :meth:`KiteProcess.rss`
the third.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import anyio

from kitecore import Kite
from kitecore.testing import ServerProcess, free_port

__all__ = ["KiteProcess", "free_port", "proc_fields", "process_rss", "square_answered"]

ATTACK_KITE = Path(__file__).with_name("attack_kite.py")


def proc_fields(pid: int, name: str) -> list[str]:
    """The fields after ``name`` in /proc/PID/status (``VmRSS:``) or /proc/PID/limits."""
    for file in ("status", "limits"):
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(name):
                return line[len(name) :].split()
    raise LookupError(f"no {name!r} in /proc/{pid}")


def process_rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (from /proc)."""
    return int(proc_fields(pid, "VmRSS:")[0]) * 1024


class KiteProcess(ServerProcess):
    """``attack_kite.py`` (square, echo, sleep; authentication off) as a child process.

    ``env`` adds ``KITE_*`` limits; ``nofile`` caps the process's file descriptors
    (``ulimit -n``) to provoke descriptor exhaustion; ``script`` serves another kite script
    that follows the same contract (``script PORT``, prints ``serving on URL``).
    """

    name = "kite"

    def __init__(
        self,
        work_dir: Path,
        *,
        env: Mapping[str, str] = {},
        nofile: int | None = None,
        script: Path = ATTACK_KITE,
        backend: str = "asyncio",
    ) -> None:
        port = free_port()
        environment = dict(os.environ)
        environment.update(KITE_PLUGINS="websocket", KITE_ANYIO_BACKEND=backend)
        environment.update(env)
        super().__init__(work_dir / f"kite-{port}.log", environment)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/kite"
        self.script = script
        self.nofile = nofile

    def command(self) -> list[str]:
        command = [sys.executable, str(self.script), str(self.port)]
        if self.nofile is not None:  # `ulimit -n` in a shell that then becomes the kite
            command = ["sh", "-c", f'ulimit -n {int(self.nofile)} && exec "$@"', "sh", *command]
        return command

    async def start(self, timeout: float = 30.0) -> str:
        """Start the kite and wait until it says it serves; returns its URL."""
        await self.start_process(timeout)
        return self.url

    def proc_status(self, name: str) -> list[str]:
        """The fields after ``name`` in /proc/PID/status (``VmRSS:``) or limits."""
        assert self.process is not None
        return proc_fields(self.process.pid, name)

    def rss(self) -> int:
        """Resident memory of the process, in bytes (from /proc)."""
        assert self.process is not None
        return process_rss(self.process.pid)


async def square_answered(url: str, value: int = 7, timeout: float = 10.0) -> bool:
    """True when a fresh client dials ``url`` and ``square(value)`` comes back right."""
    kite = Kite("hardening-caller", "1.0.0")
    kite.config.disable_authentication = True
    kite.config.transport = "websocket"  # the attack kite serves raw WebSocket only
    with anyio.fail_after(timeout):
        async with kite.new_client(url) as client:
            return bool(await client.tell("square", value) == value * value)
