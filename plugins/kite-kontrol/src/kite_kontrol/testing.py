"""A real Kontrol process for tests: ``python -m kite_kontrol`` on a loopback port.

Storage plugins and fault tests drive it the way an operator would: start it, SIGKILL it,
start it again on the same port and data directory. Several instances given the same
``data_dir`` share one key pair (start one first: it creates the pair).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process

__all__ = ["KontrolProcess", "WatchRecorder"]


class KontrolProcess:
    """One Kontrol process; ``url`` is where it serves, its stderr goes to ``log_path``.

    ``env`` adds environment variables (for example ``KONTROL_POSTGRES_PASSWORD``, so that a
    password never shows on a command line); ``plugins`` is what ``KITE_PLUGINS`` loads.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        port: int,
        storage_url: str = "memory://",
        data_dir: Path | None = None,
        username: str = "admin",
        registration_secret: str = "",
        plugins: str = "websocket,memory",
        backend: str = "asyncio",
        env: Mapping[str, str] = {},
        name: str = "kontrol",
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/kite"
        self.storage_url = storage_url
        self.data_dir = data_dir if data_dir is not None else work_dir / f"{name}-data"
        self.username = username
        self.registration_secret = registration_secret
        self.log_path = work_dir / f"{name}.log"
        self.env = dict(os.environ)
        self.env.update(
            KITE_HOME=str(work_dir / f"{name}-home"),
            KITE_PLUGINS=plugins,
            KITE_PLUGINS_STRICT="1",
            KITE_ANYIO_BACKEND=backend,
        )
        self.env.update(env)
        self.process: Process | None = None
        self._log: IO[Any] | None = None

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "kite_kontrol",
            "--storage", self.storage_url,
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--username", self.username,
            "--log-level", "INFO",
        ]  # fmt: skip
        if self.registration_secret:
            command += ["--registration-secret", self.registration_secret]
        return command

    async def start(self, timeout: float = 30.0) -> str:
        """Start the process and wait until it says it serves; returns its URL."""
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
        if b"serving on " + self.url.encode() not in line:
            raise RuntimeError(f"Kontrol said {line!r}, expected it to serve on {self.url}")
        return self.url

    def _open_log(self) -> IO[Any]:
        return self.log_path.open("ab")  # closed in _reap

    async def kill(self) -> None:
        """SIGKILL the process (no clean shutdown, like a crashed machine) and reap it."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """Terminate the process if it runs (for test teardown)."""
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
        """The end of the process log, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class WatchRecorder:
    """A watch function for ``getKites``: records the events Kontrol sends (for tests).

    >>> recorder = WatchRecorder()
    >>> answer = await client.tell("getKites", {"query": q, "watchHandler": recorder})
    >>> event = await recorder.next_result()      # {"action": "REGISTER", ...}
    """

    def __init__(self) -> None:
        import math

        self._send, self._receive = anyio.create_memory_object_stream[Any](math.inf)
        #: Every message received so far, in order.
        self.messages: list[Any] = []

    def __call__(self, *args: Any) -> None:
        message = args[0] if len(args) == 1 else list(args)
        self.messages.append(message)
        self._send.send_nowait(message)

    async def next(self, timeout: float = 30.0) -> Any:
        """The next message (``{"error", "result"}``), waiting at most ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            return await self._receive.receive()

    async def next_result(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next event; fails if Kontrol sent an error instead."""
        message = await self.next(timeout)
        assert isinstance(message, dict) and message.get("error") is None, message
        result: dict[str, Any] = message["result"]
        return result
