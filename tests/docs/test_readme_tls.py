"""The README's TLS walk-through (section "TLS"), run as written against real processes.

Every block after a ``<!-- readme-test: tls ... -->`` marker runs in README order, each in a
fresh terminal (the new user's environment plus the block's own ``export`` lines): ``kite`` is
this checkout's command, ``python`` this interpreter (``examples/...`` this checkout's file). A
block marked ``keeps running`` runs its last line in the background, ready once it prints its
first line. The only change made to the text: Kontrol's port 4000 becomes a free port.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from kitecore.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- readme-test: (?P<tags>[^>]*?) -->\s*```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)


def tls_blocks() -> list[tuple[str, bool]]:
    """(code, keeps running) of each shell block marked ``tls``."""
    blocks = []
    for match in BLOCK.finditer(README.read_text(encoding="utf-8")):
        tags = [tag.strip() for tag in match["tags"].split(",")]
        if tags[0] == "tls":
            assert match["lang"] == "sh", match["lang"]
            blocks.append((match["code"], "keeps running" in tags))
    return blocks


def argv(words: list[str]) -> list[str]:
    if words[0] == "kite":
        return [sys.executable, "-m", "kitecore.cli", *words[1:]]
    if words[0] == "python":
        rest = [str(ROOT / w) if w.startswith("examples/") else w for w in words[1:]]
        return [sys.executable, *rest]
    raise AssertionError(f"the README runs {words[0]!r}; teach this test what that is")


async def first_line(process: Process, what: str) -> str:
    assert process.stdout is not None
    seen = b""
    with anyio.fail_after(60):
        while b"\n" not in seen:
            try:
                seen += await process.stdout.receive()
            except anyio.EndOfStream:
                raise AssertionError(f"{what} exited before it was ready: {seen!r}") from None
    return seen.decode().splitlines()[0]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_readme_tls_walk_through_runs_verbatim(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KITE_", "KONTROL_"))}
    base["HOME"] = str(tmp_path / "home")
    port = free_port()
    outputs: dict[str, str] = {}
    servers: list[Process] = []
    blocks = tls_blocks()
    assert len(blocks) >= 4
    try:
        for code, keeps_running in blocks:
            env = dict(base)
            lines = [line.strip() for line in code.splitlines()]
            lines = [line for line in lines if line and not line.startswith("#")]
            for number, line in enumerate(lines):
                words = shlex.split(line.replace("4000", str(port)), comments=True)
                if words[0] == "export":
                    env.update(word.split("=", 1) for word in words[1:])
                    continue
                command = argv(words)
                if keeps_running and number == len(lines) - 1:
                    server = await anyio.open_process(
                        command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL
                    )
                    servers.append(server)
                    outputs[line] = await first_line(server, line)
                    continue
                with anyio.fail_after(60):
                    done = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
                assert done.returncode == 0, f"{line}\n{done.stderr.decode()}"
                outputs[line.split("#")[0].strip()] = done.stdout.decode()
    finally:
        for server in servers:
            server.terminate()
            with anyio.move_on_after(10):
                await server.wait()
            if server.returncode is None:
                server.kill()
            await server.aclose()

    kontrol_line = next(v for k, v in outputs.items() if k.startswith("kite kontrol"))
    assert kontrol_line == f"Kontrol serving on https://127.0.0.1:{port}/kite"
    math_line = outputs["python examples/kontrol_math.py"]
    assert " serving on https://127.0.0.1:" in math_line and math_line.endswith("registered")
    listed = outputs["kite query --username alice --name math"].split()
    assert listed[:1] == ["1"] and any(w.startswith("https://127.0.0.1:") for w in listed)
    assert outputs["kite tell --query alice/production/math square 4"].strip() == "16"
