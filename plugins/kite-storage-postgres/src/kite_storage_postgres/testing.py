"""A throwaway PostgreSQL server for tests and benchmarks (needs the server binaries installed).

>>> with TemporaryPostgres() as server:          # initdb in a temp dir, pg_ctl start
...     url = server.url()                       # postgres://kite:...@127.0.0.1:PORT/kite
...     server.restart()                         # same port, same data

The server listens on 127.0.0.1 on a free port with its Unix socket in the temp directory,
password (SCRAM) authentication over TCP, and durability off (``fsync=off``): it is for tests.
``initdb`` and ``postgres`` refuse to run as root, so under root they run as the ``postgres``
system user (the temp directory is handed to that user). Binaries are found through
``KITE_POSTGRES_BINDIR``, ``pg_config --bindir`` on ``PATH``, or the newest
``/usr/lib/postgresql/*/bin``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from kitecore.testing import free_port  # re-exported: this module's users import it here

__all__ = [
    "BINDIR_ENV",
    "PostgresServerError",
    "TemporaryPostgres",
    "find_bindir",
    "free_port",
    "postgres_server",
]

logger = logging.getLogger(__name__)

BINDIR_ENV = "KITE_POSTGRES_BINDIR"
_SYSTEM_USER = "postgres"


class PostgresServerError(RuntimeError):
    """The throwaway server could not be set up, started or stopped; the message says why."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    configured = os.environ.get(BINDIR_ENV)
    if configured:
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
        )
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in reversed(versions):
        if (candidate / "initdb").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresServerError(
        f"PostgreSQL server binaries not found; install postgresql or set ${BINDIR_ENV}"
    )


class TemporaryPostgres:
    """One throwaway server; :meth:`start` it (or use ``with``), :meth:`cleanup` removes it."""

    def __init__(
        self,
        *,
        user: str = "kite",
        password: str = "kite-test-password",
        database: str = "kite",
        bindir: str | os.PathLike[str] | None = None,
        max_connections: int = 300,
        ssl_cert_file: str | os.PathLike[str] | None = None,
        ssl_key_file: str | os.PathLike[str] | None = None,
        require_ssl: bool = False,
    ) -> None:
        """``ssl_cert_file``/``ssl_key_file`` (PEM, copied into the cluster) turn ``ssl = on``;
        ``require_ssl`` then refuses TCP connections without TLS (``hostssl`` in pg_hba)."""
        self.user = user
        self.password = password
        self.database = database
        self.bindir = Path(bindir) if bindir is not None else find_bindir()
        self.max_connections = max_connections
        if (ssl_cert_file is None) != (ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file go together")
        if require_ssl and ssl_cert_file is None:
            raise ValueError("require_ssl needs ssl_cert_file and ssl_key_file")
        self.ssl_files = (
            (Path(ssl_cert_file), Path(ssl_key_file))
            if ssl_cert_file is not None and ssl_key_file is not None
            else None
        )
        self.require_ssl = require_ssl
        self.port = 0
        self.base_dir: Path | None = None
        self._run_as: str | None = _SYSTEM_USER if os.geteuid() == 0 else None
        self._initialized = False

    # --- paths ---------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sockets"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresServerError("the server was never started")
        return self.base_dir

    @property
    def running(self) -> bool:
        """True while the server's pid file exists (it was started and not stopped)."""
        return self.base_dir is not None and (self.data_dir / "postmaster.pid").exists()

    def url(self, *, password: str | None = None, **params: Any) -> str:
        """``postgres://user:password@127.0.0.1:port/database`` plus ``params`` as the query."""
        secret = self.password if password is None else password
        text = f"postgres://{self.user}:{secret}@127.0.0.1:{self.port}/{self.database}"
        if params:
            text += "?" + urlencode({k: str(v) for k, v in params.items()})
        return text

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        """Create the cluster on first call, then start the server; returns :meth:`url`."""
        if not self._initialized:
            self._init_cluster()
        for attempt in range(3):
            try:
                self._pg_ctl("start", "-l", str(self.log_path), "-t", "60")
                break
            except PostgresServerError:
                if attempt == 2 or not self._port_taken():
                    raise
                logger.info("port %d was taken; trying another", self.port)
                self._write_port(free_port())
        if not self._initialized:
            self._run("createdb", "-h", str(self.socket_dir), "-p", str(self.port),
                      "-U", self.user, self.database)  # fmt: skip
            self._initialized = True
        logger.info("temporary postgres serving on 127.0.0.1:%d (%s)", self.port, self.base_dir)
        return self.url()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clean shutdown; ``immediate``: like a crash)."""
        if self.running:
            self._pg_ctl("stop", "-m", mode, "-t", "60")

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self._pg_ctl("start", "-l", str(self.log_path), "-t", "60")

    def cleanup(self) -> None:
        """Stop the server if it runs and delete its directory."""
        try:
            self.stop("immediate")
        finally:
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, PostgresServerError):
            return ""

    def __enter__(self) -> TemporaryPostgres:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.cleanup()

    # --- helpers -------------------------------------------------------------------------------

    def _init_cluster(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="kite-postgres-"))
        self.socket_dir.mkdir()
        password_file = self.base_dir / "password"
        password_file.write_text(self.password + "\n")
        if self._run_as is not None:
            try:
                account = pwd.getpwnam(self._run_as)
            except KeyError:
                raise PostgresServerError(
                    f"running as root, but there is no {self._run_as!r} user to run postgres as"
                ) from None
            for path in (self.base_dir, self.socket_dir, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", self.user, f"--pwfile={password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        password_file.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        if self.ssl_files is not None:
            settings.update(self._install_ssl(*self.ssl_files))
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# kite_storage_postgres.testing\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._write_port(free_port())

    def _install_ssl(self, cert: Path, key: Path) -> dict[str, str]:
        """Copy the certificate and key into the data directory (the key private to the
        server's user, as PostgreSQL demands); the settings that turn TLS on."""
        for source, name, mode in ((cert, "server.crt", 0o644), (key, "server.key", 0o600)):
            target = self.data_dir / name
            shutil.copyfile(source, target)
            os.chmod(target, mode)
            if self._run_as is not None:
                account = pwd.getpwnam(self._run_as)
                os.chown(target, account.pw_uid, account.pw_gid)
        if self.require_ssl:
            hba = self.data_dir / "pg_hba.conf"
            lines = hba.read_text().splitlines()
            hba.write_text(
                "\n".join(
                    "hostssl" + line[4:] if line.startswith("host ") else line for line in lines
                )
                + "\n"
            )
        return {"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"}

    def _write_port(self, port: int) -> None:
        self.port = port
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"port = {port}\n")  # the last setting wins

    def _port_taken(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", *args, action)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        try:
            result = subprocess.run(
                command,
                cwd=self.base_dir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                user=self._run_as or None,
                group=self._run_as or None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresServerError(f"{program} failed: {exc}") from exc
        if result.returncode != 0:
            raise PostgresServerError(
                f"{program} {_action_of(args)}failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}\n{self.log_tail(10)}"
            )


def _action_of(args: tuple[str, ...]) -> str:
    """The pg_ctl action word (for messages), or nothing."""
    return f"{args[-1]} " if args and args[-1] in {"start", "stop", "restart"} else ""


@contextlib.contextmanager
def postgres_server(**options: Any) -> Iterator[TemporaryPostgres]:
    """``with postgres_server() as server:`` a started :class:`TemporaryPostgres`, removed at
    the end."""
    with TemporaryPostgres(**options) as server:
        yield server
