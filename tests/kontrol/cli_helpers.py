"""Running ``kite`` commands and a ``kite kontrol`` process as a user would (for the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

KITE = [sys.executable, "-m", "kitecore.cli"]
PLUGINS = "websocket,token,memory,kontrol,pickers"


def cli_env(home: Path, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment of a user whose ``KITE_HOME`` is ``home`` (no registration secret)."""
    env = {**os.environ, "KITE_HOME": str(home), "KITE_PLUGINS": PLUGINS}
    for name in ("KITE_REGISTRATION_SECRET", "KONTROL_REGISTRATION_SECRET"):
        env.pop(name, None)
    env.update(extra)
    return env


async def run_cli(
    home: Path, *args: str, env: Mapping[str, str] = {}
) -> subprocess.CompletedProcess[bytes]:
    """``kite ARGS`` with stdin from /dev/null (no terminal)."""
    return await anyio.run_process(
        [*KITE, *args], env=cli_env(home, env), stdin=subprocess.DEVNULL, check=False
    )


@asynccontextmanager
async def kite_kontrol(
    home: Path, port: int, *args: str, env: Mapping[str, str] = {}, log: Path | None = None
) -> AsyncIterator[str]:
    """``kite kontrol ARGS`` until the block ends; yields its URL once it says it serves.
    Its stderr (the log) goes to ``log``."""
    command = [*KITE, "kontrol", "--ip", "127.0.0.1", "--port", str(port), *args]
    scheme = "https" if "--tls-cert" in args else "http"
    url = f"{scheme}://127.0.0.1:{port}/kite"
    log_path = log if log is not None else home.parent / f"kontrol-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        async with await anyio.open_process(
            command, env=cli_env(home, env), stdin=subprocess.DEVNULL, stderr=log_file
        ) as process:
            assert process.stdout is not None
            said = b""
            try:
                with anyio.fail_after(30):
                    while b"\n" not in said:
                        try:
                            said += await process.stdout.receive()
                        except anyio.EndOfStream:
                            break
                assert said.startswith(f"Kontrol serving on {url}".encode()), (
                    said + log_path.read_bytes()
                )
                yield url
            finally:
                process.terminate()
                await process.wait()
