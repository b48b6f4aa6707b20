"""A ``python -m kitecore.kontrol`` process on etcd storage, for the distributed tests (a module of
its own: conftest is not importable)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process

KONTROL_USER = "admin"
SECRET = "etcd-registration-secret"


class KontrolProcess:
    """One Kontrol on a fixed loopback port, storing in ``storage_url``.

    Several share ``data_dir`` (so one key pair: start the first before the others, it creates
    the pair) and each has its own ``KITE_HOME`` and log file under ``work_dir``.
    """

    def __init__(self, work_dir: Path, *, port: int, storage_url: str, data_dir: Path) -> None:
        self.port = port
        self.storage_url = storage_url
        self.data_dir = data_dir
        self.log_path = work_dir / "kontrol.log"
        self.url = f"http://127.0.0.1:{port}/kite"
        self.env = dict(os.environ)
        self.env["KITE_HOME"] = str(work_dir / "home")
        self.env["KITE_PLUGINS"] = "websocket,etcd"
        self.env["KITE_PLUGINS_STRICT"] = "1"
        self.env["KITE_ANYIO_BACKEND"] = "asyncio"
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
        """Start and wait until it prints that it serves."""
        assert self.process is None, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
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
        assert b"serving on " + self.url.encode() in line, line

    def _open_log(self) -> IO[Any]:
        return open(self.log_path, "ab")  # closed in _reap

    async def kill(self) -> None:
        """SIGKILL (no clean shutdown) and reap."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """Terminate if running (teardown)."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
        await self._reap()

    async def _reap(self) -> None:
        process, self.process = self.process, None
        if process is not None:
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
