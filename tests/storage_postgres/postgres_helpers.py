"""Kontrol processes on PostgreSQL for the distributed tests (a module: conftest is not
importable)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process
from kite_storage_postgres.testing import free_port

KONTROL_USER = "admin"
SECRET = "postgres-registration-secret"


class PostgresKontrol:
    """``python -m kitecore.kontrol --storage postgres://...`` on a loopback port.

    Every instance given the same ``data_dir`` shares the key pair (the first one creates it).
    The password is passed in ``KONTROL_POSTGRES_PASSWORD``, not on the command line.
    """

    def __init__(
        self, tmp_path: Path, index: int, *, storage_url: str, password: str, data_dir: Path
    ) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/kite"
        self.storage_url = storage_url
        self.data_dir = data_dir
        self.log_path = tmp_path / f"kontrol-{index}.log"
        self.env = dict(os.environ)
        self.env.update(
            KITE_HOME=str(tmp_path / f"kontrol-home-{index}"),
            KITE_PLUGINS="websocket,postgres",
            KITE_ANYIO_BACKEND="asyncio",
            KONTROL_POSTGRES_PASSWORD=password,
        )
        self.process: Process | None = None
        self._log: IO[Any] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "kitecore.kontrol",
            "--storage", self.storage_url,
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--username", KONTROL_USER,
            "--registration-secret", SECRET,
            "--log-level", "INFO",
        ]  # fmt: skip

    async def start(self, timeout: float = 30.0) -> None:
        """Start and wait for the "serving on" line."""
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
                    raise RuntimeError(f"Kontrol exited early:\n{self.log_tail()}") from None
        assert self.url in line.decode(), line

    def _open_log(self) -> IO[Any]:
        return open(self.log_path, "ab")  # closed in stop()

    async def kill(self) -> None:
        """SIGKILL, like a crashed machine."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.stop()

    async def stop(self) -> None:
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
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
