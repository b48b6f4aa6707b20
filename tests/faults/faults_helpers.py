"""A real Kontrol process for fault-injection tests (a module of its own: conftest is not
importable)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import anyio
import kite_auth_token
from anyio.abc import Process

logger = logging.getLogger(__name__)

#: Where kite_auth_token is imported from (installed or the source tree), for the subprocess.
PLUGIN_SRC = str(Path(kite_auth_token.__file__).resolve().parents[1])

KONTROL_USER = "admin"
SECRET = "faults-registration-secret"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KontrolProcess:
    """``python -m kitecore.kontrol`` on a fixed loopback port with a data directory.

    :meth:`start` may be called again after :meth:`kill`: the new process serves on the same
    port from the same data directory (so with the same key pair) and a fresh memory storage.
    Its log goes to ``log_path``.
    """

    def __init__(self, tmp_path: Path, *, port: int, backend: str) -> None:
        self.port = port
        self.data_dir = tmp_path / "kontrol-data"
        self.log_path = tmp_path / "kontrol.log"
        self.url = f"http://127.0.0.1:{port}/kite"
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([PLUGIN_SRC, self.env.get("PYTHONPATH", "")])
        self.env["KITE_HOME"] = str(tmp_path / "kontrol-home")
        self.env["KITE_PLUGINS"] = "websocket,memory"
        self.env["KITE_ANYIO_BACKEND"] = backend
        self.process: Process | None = None
        self._log: IO[Any] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kitecore.kontrol",
            "--storage",
            "memory://",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--username",
            KONTROL_USER,
            "--registration-secret",
            SECRET,
            "--log-level",
            "INFO",
        ]

    async def start(self, timeout: float = 30.0) -> str:
        """Start the process and wait until it says it serves; returns its URL."""
        assert self.process is None, "already running"
        self._log = self._open_log()
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
                    raise RuntimeError(f"Kontrol exited early; see {self.log_path}") from None
        url = line.decode().split("serving on ", 1)[1].split()[0]
        assert url == self.url, (url, self.url)
        return url

    def _open_log(self) -> IO[Any]:
        return open(self.log_path, "ab")  # closed in _reap

    async def kill(self) -> None:
        """SIGKILL the process (no clean shutdown) and reap it."""
        process = self.process
        assert process is not None, "not running"
        process.send_signal(signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """Terminate the process if it runs (for test teardown)."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
        await self._reap()

    async def _reap(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
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
        """The end of the process log, for assertion messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def machine_key(kite: Any, url: str, username: str) -> str:
    """A fresh kite.key for ``username`` from Kontrol's ``registerMachine`` (its own ``jti``)."""
    async with kite.new_client(url) as client:
        return await client.tell("registerMachine", {"username": username, "secret": SECRET})


async def whoami(r: Any) -> str:
    """The caller's authenticated username."""
    return r.username
