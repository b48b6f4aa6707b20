"""Kontrol for tests: a pytest plugin (``pytest11``) and helpers, in-process or as a process.

In-process (fixtures; they build on :mod:`kitecore.testing`'s ``kite_config``):

- ``kontrol_pair`` / ``evil_pair``: a key pair for the Kontrol under test, and one of a Kontrol
  nobody trusts (session-scoped: RSA keys are slow to make).
- ``token_plugins``: the core's built-in transports plus kite-auth-token's ``kiteKey`` and
  ``token`` authenticators, so kites can hold and check kite.keys.
- ``make_kontrol``: ``await make_kontrol(**options)`` starts a :class:`Kontrol` (memory storage,
  ``kontrol_pair``, username :data:`KONTROL_USER`, ``registerMachine`` by
  :data:`REGISTRATION_SECRET`), stopped when the test ends; ``options`` go to :class:`Kontrol`.

Helpers: :func:`kite_key` and :func:`foreign_kite_key` (credentials issued by a Kontrol or by
a stranger), :func:`machine_key` (a kite.key through ``registerMachine``), :func:`registered_ids`
(what a Kontrol returns for an environment), :func:`check_watch_across_kontrols` (what a storage
shared by two Kontrols must show a watcher).

As a process: :class:`KontrolProcess` runs ``python -m kite_kontrol`` on a loopback port.
Storage plugins and fault tests drive it the way an operator would: start it, SIGKILL it,
start it again on the same port and data directory. Several instances given the same
``data_dir`` share one key pair (start one first: it creates the pair).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import kite_auth_token
import pytest
from kite_auth_token import plugin as token_plugin

from kitecore import Authentication, Config, Kite
from kitecore.contracts.storage import make_identity
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import KeyPairRecord
from kitecore.testing import CORE_PLUGINS, ServerProcess

from .keyfiles import new_key_pair
from .machine import SecretPolicy
from .server import Kontrol

__all__ = [
    "KONTROL_USER",
    "REGISTRATION_SECRET",
    "KontrolProcess",
    "MakeKontrol",
    "WatchRecorder",
    "check_watch_across_kontrols",
    "evil_pair",
    "foreign_kite_key",
    "kite_key",
    "kontrol_pair",
    "machine_key",
    "make_kontrol",
    "registered_ids",
    "token_plugins",
]

#: The username of the Kontrols started here: the issuer of their kite.keys and tokens.
KONTROL_USER = "kontrol-admin"
#: The ``registerMachine`` secret of the Kontrols started here.
REGISTRATION_SECRET = "test-registration-secret"

MakeKontrol = Callable[..., Awaitable[Kontrol]]


@pytest.fixture(scope="session")
def kontrol_pair() -> KeyPairRecord:
    """The key pair of the Kontrol under test."""
    return new_key_pair()


@pytest.fixture(scope="session")
def evil_pair() -> KeyPairRecord:
    """The key pair of a Kontrol nobody here trusts."""
    return new_key_pair()


@pytest.fixture
def token_plugins() -> PluginRegistry:
    """The core's built-ins plus the kiteKey/token authenticators."""
    return load_plugins(names=CORE_PLUGINS, extra_plugins=[token_plugin])


@pytest.fixture
async def make_kontrol(
    kite_config: Config, kontrol_pair: KeyPairRecord, token_plugins: PluginRegistry
) -> AsyncIterator[MakeKontrol]:
    """Start in-process Kontrols; they stop when the test ends.

    ``await make_kontrol(config=None, **options)``: ``config`` defaults to ``kite_config`` with
    authentication on; its username becomes :data:`KONTROL_USER`. ``options`` go to
    :class:`Kontrol`, with defaults ``storage="memory://"``, ``key_pair=kontrol_pair``,
    ``plugins=token_plugins`` and ``machine_policy=SecretPolicy(REGISTRATION_SECRET)``.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def factory(*, config: Config | None = None, **options: Any) -> Kontrol:
            if config is None:
                config = kite_config.copy()
                config.disable_authentication = False
            config = config.copy()
            config.username = KONTROL_USER
            options.setdefault("key_pair", kontrol_pair)
            options.setdefault("plugins", token_plugins)
            options.setdefault("machine_policy", SecretPolicy(REGISTRATION_SECRET))
            return await stack.enter_async_context(Kontrol(config=config, **options))

        yield factory


def kite_key(kontrol: Kontrol, username: str = "alice") -> Authentication:
    """kiteKey credentials for ``username`` issued by ``kontrol``."""
    return Authentication("kiteKey", kontrol.create_kite_key(username))


def foreign_kite_key(pair: KeyPairRecord, username: str = "alice", url: str = "") -> str:
    """A kite.key signed by ``pair``, a key pair no Kontrol here stored."""
    return kite_auth_token.create_kite_key(
        username=username,
        issuer="evil",
        kontrol_url=url or "http://evil.example/kite",
        public_key=pair.public,
        private_key=pair.private,
    )


async def machine_key(
    kite: Kite, url: str, username: str, secret: str = REGISTRATION_SECRET
) -> str:
    """A fresh kite.key for ``username`` from the Kontrol at ``url`` (``registerMachine``)."""
    async with kite.new_client(url) as client:
        key = await client.tell("registerMachine", {"username": username, "secret": secret})
    if not isinstance(key, str):
        raise TypeError(f"registerMachine answered {key!r}, not a kite.key")
    return key


async def registered_ids(kite: Kite, url: str, key: str, environment: str) -> set[str]:
    """The ids of the kites the Kontrol at ``url`` returns for ``environment`` (asked with the
    kite.key ``key``)."""
    async with kite.new_client(url, auth=Authentication("kiteKey", key)) as client:
        answer = await client.tell("getKites", {"query": {"environment": environment}})
    return {entry["kite"]["id"] for entry in answer["kites"]}


class KontrolProcess(ServerProcess):
    """One Kontrol process; ``url`` is where it serves, its stderr goes to ``log_path``.

    ``env`` adds environment variables (for example ``KONTROL_POSTGRES_PASSWORD``, so that a
    password never shows on a command line); ``plugins`` is what ``KITE_PLUGINS`` loads.
    """

    name = "Kontrol"

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
        environment = dict(os.environ)
        environment.update(
            KITE_HOME=str(work_dir / f"{name}-home"),
            KITE_PLUGINS=plugins,
            KITE_PLUGINS_STRICT="1",
            KITE_ANYIO_BACKEND=backend,
        )
        environment.update(env)
        super().__init__(work_dir / f"{name}.log", environment)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/kite"
        self.storage_url = storage_url
        self.data_dir = data_dir if data_dir is not None else work_dir / f"{name}-data"
        self.username = username
        self.registration_secret = registration_secret

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
        line = await self.start_process(timeout)
        if not line.endswith("serving on " + self.url):
            raise RuntimeError(f"Kontrol said {line!r}, expected it to serve on {self.url}")
        return self.url


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


async def check_watch_across_kontrols(
    a_url: str,
    b_url: str,
    config: Config,
    plugins: PluginRegistry,
    write_short_lived: Callable[[KiteIdentity], Awaitable[None]],
) -> None:
    """The registry watch across two Kontrols sharing one storage: a watcher on Kontrol A (at
    ``a_url``) sees, once each and in order, a kite registering through Kontrol B, that kite
    leaving B, and a kite written by a third writer (``write_short_lived(identity)``: through
    a storage of its own, with a TTL of a second or less) appearing and then expiring.

    ``config`` is the kites' base configuration (its environment is the one watched, and must
    hold no other kite); both Kontrols take :data:`REGISTRATION_SECRET` for ``registerMachine``
    (as :class:`KontrolProcess` sets them up).
    """
    environment = config.environment
    async with contextlib.AsyncExitStack() as stack:
        observer = await stack.enter_async_context(
            Kite("observer", "1.0.0", config=config.copy(), plugins=plugins)
        )
        key = await machine_key(observer, a_url, "eve")
        watcher = await stack.enter_async_context(
            observer.new_client(a_url, auth=Authentication("kiteKey", key))
        )
        events = WatchRecorder()
        answer = await watcher.tell(
            "getKites", {"query": {"environment": environment}, "watchHandler": events}
        )
        assert answer["kites"] == [] and answer["watcherID"], answer

        kite_config = config.copy()
        kite_config.apply_kite_key(await machine_key(observer, a_url, "bob"))
        kite_config.kontrol_url = b_url
        async with Kite("svc", "1.0.0", config=kite_config, plugins=plugins) as kite:
            await kite.register()
            event = await events.next_result()
            assert (event["action"], event["kite"]["id"], event["url"]) == (
                "REGISTER",
                kite.id,
                kite.url,
            ), event
            assert event["token"]
        # the kite closed its connection to B: A's watcher hears it
        gone = {"action": "DEREGISTER", "kite": kite.identity.to_wire(), "token": ""}
        assert await events.next_result() == gone

        short = make_identity(environment=environment)
        await write_short_lived(short)
        assert (await events.next_result())["action"] == "REGISTER"
        expired = {"action": "DEREGISTER", "kite": short.to_wire(), "token": ""}
        assert await events.next_result() == expired
        assert len(events.messages) == 4, events.messages  # nothing repeated by the other Kontrol
