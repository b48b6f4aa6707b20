"""The :class:`Kontrol`: a kite named ``kontrol`` over a :class:`~kitecore.storage.Storage`.

>>> kontrol = Kontrol(storage="memory://", data_dir="/var/lib/kontrol", config=config)
>>> async with kontrol:                 # serves on kontrol.url until the block ends
...     key = kontrol.create_kite_key("alice")

On start Kontrol loads (or creates) its key pair from ``data_dir``, stores it, serves its methods
and the HTTP endpoints, registers itself in storage and keeps that registration fresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from kitecore.config import Config
from kitecore.kite import Kite
from kitecore.plugins import PluginRegistry, get_registry
from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import KeyPairRecord, RegisterValue, Storage, StorageError
from kitecore.storage.memory import MemoryStorage

from ._tokenlib import kite_auth_token
from .auth import KiteKeyAuthenticator, TokenAuthenticator
from .departures import Departures
from .handlers import KontrolHandlers
from .heartbeat import HeartbeatCalls
from .http import HTTPEndpoints
from .identity import IdentityFile, kontrol_config
from .keyfiles import KeyFiles, key_id_for, new_key_pair
from .keyring import Keyring
from .limits import FailureLimiter, KiteQuota
from .machine import MachinePolicy
from .settings import KontrolSettings
from .tokens import TokenIssuer
from .watch import WatchHub

__all__ = ["KONTROL_VERSION", "Kontrol"]

logger = logging.getLogger(__name__)

#: The version Kontrol's kite reports (Go's ``KontrolVersion``).
KONTROL_VERSION = "0.0.4"


class Kontrol:
    """Kite's discovery and token service.

    ``storage`` is a :class:`Storage` (left open on exit: the caller owns it) or a storage URL
    opened through the ``kite_register_storages`` plugins (closed on exit). Key pairs come from
    ``key_pair`` (and ``retired_keys``) or from ``data_dir`` (created on first run); with neither,
    a fresh pair lives only in memory. ``machine_policy`` decides ``registerMachine``
    (:mod:`kite_kontrol.machine`; ``None`` refuses every call). ``config`` gives the kite's
    username (Kontrol's issuer name), environment, region, address and ``kontrol_url`` (the URL
    written into kite.keys; default: the URL Kontrol serves on); without one, the defaults and
    ``KITE_*`` variables, never the kite.key in ``$KITE_HOME`` (a user's identity). With a
    ``data_dir``, the username is kept there (:mod:`kite_kontrol.identity`): fixed on first
    start, refused if a later start asks for another.
    """

    def __init__(
        self,
        *,
        storage: Storage | str = "memory://",
        data_dir: str | os.PathLike[str] | None = None,
        key_pair: KeyPairRecord | None = None,
        retired_keys: Sequence[KeyPairRecord] = (),
        config: Config | None = None,
        plugins: PluginRegistry | None = None,
        settings: KontrolSettings | None = None,
        machine_policy: MachinePolicy | None = None,
        version: str = KONTROL_VERSION,
        register_url: str | None = None,
    ) -> None:
        # never Config.from_env(): the kite.key in $KITE_HOME is a user's, not Kontrol's
        self.config = kontrol_config() if config is None else config.copy()
        self.plugins = get_registry() if plugins is None else plugins
        self.settings = KontrolSettings() if settings is None else settings
        self.machine_policy = machine_policy
        self.key_files = KeyFiles(data_dir) if data_dir is not None else None
        self._storage_spec = storage
        self._given_pair = key_pair
        self._given_retired = list(retired_keys)
        self._register_url = register_url
        self.kite = Kite("kontrol", version, config=self.config, plugins=self.plugins)
        limits = self.settings
        #: Registered kites per username (``max_kites_per_user``).
        self.quota = KiteQuota(limits.max_kites_per_user)
        #: Failed registerMachine attempts, by peer host and by username.
        self.machine_failures = FailureLimiter(
            limits.machine_max_failures, limits.machine_failure_window, limits.machine_lockout
        )
        self.handlers = KontrolHandlers(self)
        self.handlers.install()
        #: Registry watches (``getKites`` with a watch function) and their change feed.
        self.watch = WatchHub(self)
        #: Kites registered over a connection, deleted when it closes.
        self.departures = Departures(self)
        #: Kontrol's ``kite.heartbeat`` calls on registered kites, awaiting their answers.
        self.heartbeat_calls = HeartbeatCalls(self.settings.heartbeat_call_timeout)
        self._stack: contextlib.AsyncExitStack | None = None
        # set up on start
        self.storage: Storage = storage if isinstance(storage, Storage) else MemoryStorage()
        self.keyring: Keyring = None  # type: ignore[assignment]
        self.tokens: TokenIssuer = None  # type: ignore[assignment]
        self.kite_key_authenticator: KiteKeyAuthenticator = None  # type: ignore[assignment]
        self.http: HTTPEndpoints = None  # type: ignore[assignment]
        #: The last storage failure of Kontrol's own writes; ``None`` while healthy.
        self.storage_error: str | None = None
        self._pending_retired: list[KeyPairRecord] | None = None

    def __repr__(self) -> str:
        return f"<Kontrol {self.kite.url or 'not started'}>"

    # --- properties --------------------------------------------------------------------------

    @property
    def username(self) -> str:
        """Kontrol's username: the ``iss`` of every kite.key and token it signs."""
        return self.config.username

    @property
    def url(self) -> str:
        """Where Kontrol serves (``http://host:port/kite``), once started."""
        return self.kite.url

    @property
    def kontrol_url(self) -> str:
        """The URL kites are told to reach Kontrol at (``config.kontrol_url`` or :attr:`url`)."""
        return self.config.kontrol_url or self.kite.url

    @property
    def public_key(self) -> str:
        """The current public key PEM."""
        return self.keyring.current.public

    @property
    def identity(self) -> KiteIdentity:
        return self.kite.identity

    # --- key pairs and kite.keys -------------------------------------------------------------

    def _load_keys(self) -> tuple[KeyPairRecord, list[KeyPairRecord]]:
        if self._given_pair is not None:
            return self._given_pair, self._given_retired
        if self.key_files is not None:
            has_keys = self.key_files.private_path.exists()
            identity = IdentityFile(self.key_files.data_dir)
            self.config.username = identity.resolve(self.config.username, has_keys=has_keys)
            pair, _ = self.key_files.load_or_create()
            return pair, [*self.key_files.retired(), *self._given_retired]
        logger.warning("Kontrol has no data directory: its key pair lives only in memory")
        return new_key_pair(), self._given_retired

    def create_kite_key(self, username: str) -> str:
        """A kite.key for ``username`` signed with the current pair (Go ``registerUser``)."""
        pair = self.keyring.current
        return kite_auth_token.create_kite_key(
            username=username,
            issuer=self.username,
            kontrol_url=self.kontrol_url,
            public_key=pair.public,
            private_key=pair.private,
        )

    async def rotate_key(self, new: KeyPairRecord | None = None) -> KeyPairRecord:
        """Make a new key pair current and retire the old one (in storage and ``data_dir``).

        Kites holding kite.keys signed by the old pair still authenticate, and get a re-signed
        kite.key when they register again. Returns the new pair.
        """
        if new is None:
            new = new_key_pair()
        elif not new.id:
            new = dataclasses.replace(new, id=key_id_for(new.public))
        if self.key_files is not None:
            self.key_files.rotate(new)
        await self.keyring.rotate(new)
        self.kite_key_authenticator.clear()
        self.tokens.clear()
        self._sync_kite_config()
        await self._register_self()
        return new

    def _sync_kite_config(self) -> None:
        self.config.kontrol_key = self.keyring.current.public
        self.config.kontrol_user = self.username

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Kontrol:
        async with contextlib.AsyncExitStack() as stack:
            await self._open_storage(stack)
            current, retired = self._load_keys()
            self.keyring = Keyring(self.storage, current, self.settings)
            self._pending_retired = list(retired)
            await self._setup_keys()
            self.tokens = TokenIssuer(self.keyring, self.settings)
            self.kite_key_authenticator = KiteKeyAuthenticator(
                self.keyring, verify_ttl=self.settings.verify_ttl
            )
            self.kite.authenticators["kiteKey"] = self.kite_key_authenticator
            self.kite.authenticators["token"] = TokenAuthenticator(
                self.keyring, lambda: self.username, lambda: self.kite.identity
            )
            self._sync_kite_config()
            self.http = HTTPEndpoints(self)
            self.http.mount(self.kite)
            await stack.enter_async_context(self.kite)
            await self._register_self()
            group = await stack.enter_async_context(anyio.create_task_group())
            group.start_soon(self._keep_registered)
            group.start_soon(self.watch.run)
            group.start_soon(self.heartbeat_calls.run)
            stack.callback(group.cancel_scope.cancel)
            logger.info(
                "Kontrol %s serving on %s (key pair %s)", self.username, self.url, current.id
            )
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # the body's exception propagates unwrapped

    async def _open_storage(self, stack: contextlib.AsyncExitStack) -> None:
        spec = self._storage_spec
        if isinstance(spec, Storage):
            self.storage = spec
            return
        if "memory" not in self.plugins.storages and spec.startswith("memory:"):
            self.storage = MemoryStorage.from_url(spec)  # built in even when plugins are limited
        else:
            self.storage = self.plugins.storage_for_url(spec)
        stack.push_async_callback(self.storage.aclose)

    @property
    def healthy(self) -> bool:
        """False while the storage fails Kontrol's own writes (see :attr:`storage_error`)."""
        return self.storage_error is None and self._pending_retired is None

    async def _setup_keys(self) -> None:
        """Store the key pairs; a storage that is down is retried by :meth:`_keep_registered`
        instead of stopping Kontrol from starting."""
        try:
            await self.keyring.setup(self._pending_retired or ())
        except StorageError as exc:
            self.storage_error = str(exc)
            logger.error("Kontrol could not store its key pairs (will retry): %s", exc)
            return
        self._pending_retired = None

    async def _register_self(self) -> None:
        url = self._register_url or self.kontrol_url
        value = RegisterValue(url, self.keyring.current.id)
        try:
            await self.storage.upsert(self.kite.identity, value, ttl=self.settings.key_ttl)
        except StorageError as exc:
            self.storage_error = str(exc)
            logger.error("Kontrol could not register itself: %s", exc)
            return
        if self.storage_error is not None:
            logger.info("Kontrol's storage works again")
        self.storage_error = None

    async def _keep_registered(self) -> None:
        while True:
            interval = self.settings.self_register_interval
            # unhealthy: check the storage again soon, to report recovery quickly
            await anyio.sleep(interval if self.healthy else min(interval, 1.0))
            if self._pending_retired is not None:
                await self._setup_keys()
                if self._pending_retired is not None:
                    continue
            await self._register_self()

    async def serve(self) -> None:
        """Serve until cancelled."""
        async with self:
            await anyio.sleep_forever()


def default_data_dir() -> Path:
    """``$KITE_HOME/kontrol`` (default ``~/.kite/kontrol``)."""
    return kite_auth_token.kite_home() / "kontrol"
