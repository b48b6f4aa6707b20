"""Pytest plugin with fixtures for testing kites (registered through ``pytest11``).

Fixtures:

- ``kite_plugins``: a plugin registry with only the core's built-ins (``websocket``,
  ``loopback``), so a test never picks up whatever else happens to be installed.
  Override it in a ``conftest.py`` to test with more plugins.
- ``kite_config``: a :class:`Config` for loopback tests (127.0.0.1, a free port,
  authentication off, ``KITE_HOME`` in a temporary directory).
- ``make_kite``: an async factory ``await make_kite(name="test", methods={...})`` that
  starts a kite and stops it when the test ends.
- ``kite_server`` / ``kite_client``: a running kite serving ``square`` and ``echo``, and
  a client dialed to it.

Helpers: :func:`free_port` (a loopback TCP port for a server a test starts itself), and the
methods :func:`square`, :func:`echo` and :func:`whoami` to serve.

The async fixtures need an anyio test (``@pytest.mark.anyio``).
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import pytest

from kitecore.client import Client
from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.request import Request

CORE_PLUGINS = ("websocket", "loopback")

MakeKite = Callable[..., Awaitable[Kite]]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to it soon, or it may be taken).

    It is chosen below the kernel's ephemeral range, where the local ports of outgoing
    connections come from: a port from that range could be taken by any connection the test
    run makes (to etcd, to a kite) before the server it is meant for binds it. Nor is it one
    of the last :data:`_REMEMBERED` ports this process was given: two servers of one test
    (an etcd member's client and peer ports, say) never get the same port because neither
    had bound it yet.
    """
    low = _ephemeral_low()
    for _ in range(64):
        port = _ports.randrange(_FIRST_CHOSEN_PORT, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): try another
        _remember(port)
        return port
    with socket.socket() as sock:  # (no free port found below the range: take one in it)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _remember(port)
    return port


def _remember(port: int) -> None:
    if len(_handed_out) >= _REMEMBERED:
        del _handed_out[next(iter(_handed_out))]  # the oldest
    _handed_out[port] = None


#: The lowest port :func:`free_port` chooses (below: well-known and common service ports).
_FIRST_CHOSEN_PORT = 10_000
#: Its own generator: tests that seed :mod:`random` must not make it repeat its choices.
_ports = random.Random()
#: How many of its last ports :func:`free_port` does not hand out again.
_REMEMBERED = 4096
#: Those ports, oldest first (a dict keeps the order in which they were handed out).
_handed_out: dict[int, None] = {}


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 unless configured)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return max(low, _FIRST_CHOSEN_PORT + 1_000)


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """Only the core's built-in plugins."""
    return load_plugins(names=CORE_PLUGINS)


@pytest.fixture
def kite_config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A config for tests on loopback, isolated from the user's ``~/.kite``."""
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kite-home"))
    config = Config()
    config.ip = "127.0.0.1"
    config.port = 0
    config.disable_authentication = True
    config.timeout = 10.0
    return config


async def square(r: Request) -> float:
    """``square(n)``: the seed's example method."""
    a = r.args.one(float)
    return a * a


async def echo(r: Request) -> list[Any]:
    """``echo(*args)``: the arguments back."""
    return r.args.as_list()


async def whoami(r: Any) -> str:
    """``whoami()``: the caller's username (the authenticated one when the method needs auth)."""
    return str(r.username)


@pytest.fixture
async def make_kite(kite_config: Config, kite_plugins: PluginRegistry) -> AsyncIterator[MakeKite]:
    """Start kites on free loopback ports; they stop when the test ends.

    Each kite serves in a task of its own (owned by this fixture), so kites started in a test
    body never nest their task groups inside other fixtures' contexts.
    """

    async def serve(kite: Kite, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with kite:
            task_status.started()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:

        async def factory(
            name: str = "test",
            version: str = "1.0.0",
            *,
            methods: dict[str, Any] | None = None,
            config: Config | None = None,
        ) -> Kite:
            kite = Kite(name, version, config=config or kite_config.copy(), plugins=kite_plugins)
            for method_name, handler in (methods or {}).items():
                kite.handle(method_name, handler)
            await group.start(serve, kite)
            return kite

        yield factory
        group.cancel_scope.cancel()


@pytest.fixture
async def kite_server(make_kite: MakeKite) -> Kite:
    """A running kite serving ``square`` and ``echo``."""
    return await make_kite("server", methods={"square": square, "echo": echo})


@pytest.fixture
async def kite_client(
    kite_server: Kite, kite_config: Config, kite_plugins: PluginRegistry
) -> AsyncIterator[Client]:
    """A client of ``kite_server``, dialed over the raw WebSocket transport."""
    caller = Kite("caller", "1.0.0", config=kite_config.copy(), plugins=kite_plugins)
    async with caller.new_client(kite_server.url) as client:
        yield client


class ServerProcess:
    """A server run as a child process by tests: it prints ``serving on URL`` on its first
    line of stdout once it listens; its stderr goes to ``log_path``.

    Subclasses give :meth:`command`; ``env`` is the child's whole environment. ``start``
    waits for that first line, ``kill`` is a crash (SIGKILL), ``stop`` a teardown (SIGTERM,
    then SIGKILL after 10 s), and ``log_tail`` feeds assertion messages.
    """

    #: What the process is called in errors ("Kontrol exited early").
    name = "server"

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.env = env
        self.process: anyio.abc.Process | None = None
        self._log: IO[Any] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start_process(self, timeout: float = 30.0) -> str:
        """Start the process and return the first line it prints (``serving on URL``)."""
        assert self.process is None, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")  # closed in _reap
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
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}") from None
        first = line.decode(errors="replace").splitlines()[0]
        if "serving on " not in first:
            raise RuntimeError(f"{self.name} said {first!r}:\n{self.log_tail()}")
        return first

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL the process (no clean shutdown, like a crashed machine) and reap it."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """Terminate the process if it runs, and reap it (for test teardown)."""
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
        """The end of the process's stderr, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
