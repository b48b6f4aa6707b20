"""Throw-away etcd servers for tests and benchmarks: one member or a small cluster on loopback.

>>> with EtcdCluster.start(tmp_dir, size=3) as cluster:
...     url = cluster.storage_url("/test")      # etcd://127.0.0.1:p1,127.0.0.1:p2,.../test
...     cluster.members[0].kill()               # a crash (SIGKILL)
...     cluster.members[0].start()              # back, same data directory

Members listen on free loopback ports, keep their data in the given directory and log to a
file there. The binary is ``$ETCD_BIN`` or ``etcd`` on ``PATH`` (Debian's ``etcd-server``
package installs ``/usr/bin/etcd``). Elections are tuned short (heartbeat 50 ms, election
timeout 500 ms), which also lowers etcd's minimum lease TTL to 1 s.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kitecore.testing import free_port  # re-exported: this module's users import it here

__all__ = ["EtcdCluster", "EtcdMember", "etcd_binary", "free_port"]

logger = logging.getLogger(__name__)

HEARTBEAT_MS = 50
ELECTION_MS = 500
#: How many times :meth:`EtcdCluster.start` tries when a member finds a port of its taken.
START_ATTEMPTS = 3
#: What etcd logs when it cannot bind a port.
PORT_TAKEN = "address already in use"


def etcd_binary() -> str | None:
    """The etcd executable: ``$ETCD_BIN``, else ``etcd`` on ``PATH`` or ``/usr/bin/etcd``."""
    candidate = os.environ.get("ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
    return candidate if os.access(candidate, os.X_OK) else None


@dataclass(frozen=True)
class EtcdTLS:
    """TLS for a test etcd: it serves ``https`` with ``cert_file``/``key_file`` (signed by
    ``ca_file``); with ``client_cert_file`` set it requires client certificates of ``ca_file``
    (``--client-cert-auth``), and the health checks and storage URLs present that one."""

    cert_file: str
    key_file: str
    ca_file: str
    client_cert_file: str = ""
    client_key_file: str = ""

    def context(self) -> ssl.SSLContext:
        """A client context that trusts ``ca_file`` and shows the client certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context


@dataclass
class EtcdMember:
    """One etcd process of an :class:`EtcdCluster`."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    initial_cluster: str = ""
    binary: str = "etcd"
    tls: EtcdTLS | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        tls: list[str] = []
        if self.tls is not None:
            tls = ["--cert-file", self.tls.cert_file, "--key-file", self.tls.key_file]
            if self.tls.client_cert_file:
                tls += ["--client-cert-auth", "--trusted-ca-file", self.tls.ca_file]
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "kite-test-cluster",
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            *tls,
        ]  # fmt: skip

    def start(self) -> None:
        """Start the process (again, after :meth:`kill`, with the same data directory)."""
        if self.running:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # closed in _reap
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )

    def healthy(self) -> bool:
        """True when this member answers ``/health`` with a leader elected."""
        try:
            context = self.tls.context() if self.tls is not None else None
            url = f"{self.client_url}/health"
            with urllib.request.urlopen(url, timeout=1, context=context) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """SIGKILL the member (a crash) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """Terminate the member cleanly if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
        self._reap()

    def _reap(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        """The end of the member's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class EtcdCluster:
    """``size`` etcd members on loopback (1 for a plain server). Use as a context manager."""

    def __init__(
        self,
        base_dir: Path | str,
        size: int = 1,
        *,
        binary: str | None = None,
        tls: EtcdTLS | None = None,
    ) -> None:
        binary = binary or etcd_binary()
        if binary is None:
            raise FileNotFoundError(
                "etcd is not installed: apt-get install etcd-server, or set ETCD_BIN"
            )
        base = Path(base_dir)
        self.members = [
            EtcdMember(
                f"m{i}", free_port(), free_port(), base / f"m{i}.etcd", binary=binary, tls=tls
            )
            for i in range(size)
        ]
        self.tls = tls
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @classmethod
    def start(
        cls,
        base_dir: Path | str,
        size: int = 1,
        *,
        timeout: float = 30.0,
        tls: EtcdTLS | None = None,
    ) -> EtcdCluster:
        """Start a cluster and wait until every member is healthy.

        A member that exits because one of its ports was taken between :func:`free_port`
        choosing it and etcd binding it (by another process) makes the whole cluster start
        again on new ports, up to :data:`START_ATTEMPTS` times.
        """
        for attempt in range(1, START_ATTEMPTS + 1):
            cluster = cls(base_dir, size, tls=tls)
            for member in cluster.members:
                member.start()
            try:
                cluster.wait_healthy(timeout=timeout)
            except Exception:
                cluster.stop()
                if attempt < START_ATTEMPTS and cluster._lost_a_port():
                    cluster._remove_files()
                    continue
                raise
            except BaseException:  # (interrupted: no other attempt)
                cluster.stop()
                raise
            return cluster
        raise AssertionError("unreachable")  # (the last attempt returns or raises)

    def _lost_a_port(self) -> bool:
        return any(PORT_TAKEN in member.log_tail() for member in self.members)

    def _remove_files(self) -> None:
        for member in self.members:
            shutil.rmtree(member.data_dir, ignore_errors=True)
            member.log_path.unlink(missing_ok=True)

    @property
    def endpoints(self) -> str:
        """``127.0.0.1:p1,127.0.0.1:p2,...``: the client endpoints."""
        return ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def storage_url(self, prefix: str = "/kite", **options: Any) -> str:
        """An ``etcd://`` storage URL naming every member (``etcds://`` with the CA and the
        client certificate when the cluster serves TLS)."""
        scheme = "etcd"
        if self.tls is not None:
            scheme = "etcds"
            options = {"ca": self.tls.ca_file, **options}
            if self.tls.client_cert_file:
                options = {
                    "cert": self.tls.client_cert_file,
                    "key": self.tls.client_key_file,
                    **options,
                }
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"{scheme}://{self.endpoints}{prefix}" + (f"?{query}" if query else "")

    def wait_healthy(
        self, *, timeout: float = 30.0, members: list[EtcdMember] | None = None
    ) -> None:
        """Wait until the running members (or ``members``) report a leader."""
        deadline = time.monotonic() + timeout
        waiting = [m for m in (members or self.members) if m.running]
        while waiting:
            for member in list(waiting):
                if not member.running:
                    raise RuntimeError(f"etcd {member.name} exited:\n{member.log_tail()}")
                if member.healthy():
                    waiting.remove(member)
            if waiting and time.monotonic() > deadline:
                tails = "\n".join(f"{m.name}:\n{m.log_tail()}" for m in waiting)
                raise TimeoutError(f"etcd not healthy after {timeout:g}s:\n{tails}")
            if waiting:
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop every member."""
        for member in self.members:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
