"""The README's discovery walk-through, run as written against a real Kontrol process.

Every block after a ``<!-- readme-test: discovery ... -->`` marker runs, in README order:
shell blocks line by line (``kite`` is this checkout's command, ``python`` this interpreter),
Python blocks as scripts. A block marked ``keeps running`` is a server the reader leaves
running in a terminal of its own: it starts in the background and is ready once it prints its
first line. A block naming an ``examples/*.py`` file must be that file's code, verbatim.

The only change made to the README's text: Kontrol's port 4000 becomes a free port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from kite_kontrol.testing import KontrolProcess

from kitecore.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- readme-test: (?P<tags>[^>]*?) -->\s*```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
README_PORT = "4000"


@dataclass
class Block:
    """One marked README block."""

    lang: str
    code: str
    tags: list[str]

    @property
    def keeps_running(self) -> bool:
        return "keeps running" in self.tags

    @property
    def example(self) -> str | None:
        return next((tag for tag in self.tags if tag.startswith("examples/")), None)


def discovery_blocks() -> list[Block]:
    blocks = []
    for match in BLOCK.finditer(README.read_text(encoding="utf-8")):
        tags = [tag.strip() for tag in match["tags"].split(",")]
        if tags[0] == "discovery":
            blocks.append(Block(match["lang"], match["code"], tags[1:]))
    return blocks


def user_env(home: Path) -> dict[str, str]:
    """A new user's environment: a HOME of their own, no KITE_* settings, every plugin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITE_", "KONTROL_"))}
    env["HOME"] = str(home)
    return env


def argv(line: str, port: int) -> list[str]:
    """A README shell line as a command of this checkout (comments dropped)."""
    words = shlex.split(line.replace(README_PORT, str(port)), comments=True)
    if words[0] == "kite":
        return [sys.executable, "-m", "kitecore.cli", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"the README runs {words[0]!r}; teach this test what that is")


class ReadmeKontrol(KontrolProcess):
    """Kontrol started by the README's own ``kite kontrol`` line, every plugin loaded."""

    def __init__(self, work_dir: Path, port: int, command: list[str], env: dict[str, str]):
        super().__init__(work_dir, port=port)
        self._command = command
        self.env = {**env, "KITE_HOME": str(work_dir / "kontrol-home")}

    def command(self) -> list[str]:
        return self._command


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


def test_readme_python_blocks_are_the_examples():
    blocks = [block for block in discovery_blocks() if block.lang == "python"]
    assert blocks, "no Python block of the discovery walk-through is marked"
    for block in blocks:
        assert block.example, f"say which example this block is:\n{block.code}"
        assert block.code.strip() in (ROOT / block.example).read_text(encoding="utf-8")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_readme_discovery_walk_through_runs_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./kontrol-data lands here
    env = user_env(tmp_path / "home")
    port = free_port()
    outputs: dict[str, str] = {}
    kontrols: list[ReadmeKontrol] = []
    servers: list[Process] = []
    try:
        for number, block in enumerate(discovery_blocks(), 1):
            if block.lang == "sh":
                for line in (raw.strip() for raw in block.code.splitlines()):
                    if not line or line.startswith("#"):
                        continue
                    command = argv(line, port)
                    key = line.split("#")[0].strip()
                    if block.keeps_running and command[1:3] == ["-m", "kitecore.cli"]:
                        assert command[3] == "kontrol", f"what keeps running here? {line}"
                        kontrol = ReadmeKontrol(tmp_path, port, command, env)
                        kontrols.append(kontrol)
                        await kontrol.start(timeout=60)
                        continue
                    assert not block.keeps_running, f"what keeps running here? {line}"
                    with anyio.fail_after(60):
                        done = await anyio.run_process(command, env=env, check=False)
                    assert done.returncode == 0, f"{line}\n{done.stderr.decode()}"
                    outputs[key] = done.stdout.decode()
            else:
                assert block.lang == "python", block.lang
                script = tmp_path / f"block{number}.py"
                script.write_text(block.code, encoding="utf-8")
                command = [sys.executable, str(script)]
                if block.keeps_running:
                    server = await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL)
                    servers.append(server)
                    outputs[block.example or str(script)] = await first_line(server, block.example)
                    continue
                with anyio.fail_after(60):
                    done = await anyio.run_process(command, env=env, check=False)
                assert done.returncode == 0, f"{block.example}\n{done.stderr.decode()}"
                outputs[block.example or str(script)] = done.stdout.decode()
    finally:
        for server in servers:
            server.terminate()
            with anyio.move_on_after(10):
                await server.wait()
            if server.returncode is None:
                server.kill()
            await server.aclose()
        for kontrol in kontrols:
            await kontrol.stop()

    url = f"http://127.0.0.1:{port}/kite"
    key_claims = json.loads(outputs["kite showkey"])
    assert key_claims["sub"] == "alice" and key_claims["kontrolURL"] == url
    assert (tmp_path / "home" / ".kite" / "kite.key").is_file()  # where the README says
    assert "/alice/production/math/1.0.0/" in outputs["examples/kontrol_math.py"]
    listed = outputs["kite query --username alice --name math"].split()
    assert listed[:1] == ["1"] and listed[1].startswith("/alice/production/math/1.0.0/")
    assert outputs["kite tell --query alice/production/math square 4"].strip() == "16"
    assert outputs["examples/kontrol_caller.py"].split() == ["16", "25"]
