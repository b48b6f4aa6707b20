"""The hardening tests' kit: a real kite process to attack, its memory, a normal caller.

Every hardening test does the same three things after its attack: the process is still
alive, another client's ``square`` call is answered, and the process's resident memory stays
under a stated bound. :class:`KiteProcess` gives the first two and :meth:`KiteProcess.rss`
the third.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process

from kitecore import Kite
from kitecore.testing import free_port

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


class KiteProcess:
    """``attack_kite.py`` (square, echo, sleep; authentication off) as a child process.

    ``env`` adds ``KITE_*`` limits; ``nofile`` caps the process's file descriptors
    (``ulimit -n``) to provoke descriptor exhaustion; ``script`` serves another kite script
    that follows the same contract (``script PORT``, prints ``serving on URL``).
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        env: Mapping[str, str] = {},
        nofile: int | None = None,
        script: Path = ATTACK_KITE,
        backend: str = "asyncio",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/kite"
        self.script = script
        self.nofile = nofile
        self.log_path = work_dir / f"kite-{self.port}.log"
        self.env = dict(os.environ)
        self.env.update(KITE_PLUGINS="websocket", KITE_ANYIO_BACKEND=backend)
        self.env.update(env)
        self.process: Process | None = None
        self._log: IO[Any] | None = None

    def command(self) -> list[str]:
        command = [sys.executable, str(self.script), str(self.port)]
        if self.nofile is not None:  # `ulimit -n` in a shell that then becomes the kite
            command = ["sh", "-c", f'ulimit -n {int(self.nofile)} && exec "$@"', "sh", *command]
        return command

    async def start(self, timeout: float = 30.0) -> str:
        """Start the kite and wait until it says it serves; returns its URL."""
        self._log = self.log_path.open("ab")
        self.process = await anyio.open_process(
            self.command(), env=self.env, stdin=subprocess.DEVNULL, stderr=self._log
        )
        assert self.process.stdout is not None
        line = b""
        with anyio.fail_after(timeout):
            while b"\n" not in line:
                try:
                    line += await self.process.stdout.receive()
                except anyio.EndOfStream:
                    raise RuntimeError(f"kite exited early:\n{self.log_tail()}") from None
        if b"serving on " not in line:
            raise RuntimeError(f"kite said {line!r}:\n{self.log_tail()}")
        return self.url

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def proc_status(self, name: str) -> list[str]:
        """The fields after ``name`` in /proc/PID/status (``VmRSS:``) or limits."""
        assert self.process is not None
        return proc_fields(self.process.pid, name)

    def rss(self) -> int:
        """Resident memory of the process, in bytes (from /proc)."""
        assert self.process is not None
        return process_rss(self.process.pid)

    async def stop(self) -> None:
        """Terminate the process if it runs, and reap it (for teardown)."""
        process, self.process = self.process, None
        if process is not None:
            if process.returncode is None:
                process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's stderr, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def square_answered(url: str, value: int = 7, timeout: float = 10.0) -> bool:
    """True when a fresh client dials ``url`` and ``square(value)`` comes back right."""
    kite = Kite("hardening-caller", "1.0.0")
    kite.config.disable_authentication = True
    kite.config.transport = "websocket"  # the attack kite serves raw WebSocket only
    with anyio.fail_after(timeout):
        async with kite.new_client(url) as client:
            return bool(await client.tell("square", value) == value * value)
