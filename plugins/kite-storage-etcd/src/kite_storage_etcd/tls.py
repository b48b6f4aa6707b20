"""TLS to etcd (``etcds://`` URLs): gRPC channel credentials and an aetcd client that uses them.

aetcd 1.0 opens only plaintext channels (``grpc.aio.insecure_channel``) in
:meth:`aetcd.Client.connect` and has no TLS option. :class:`TLSClient` overrides that one
method: the same steps (open the channel, authenticate when a user is set, make the stubs and
the watcher) over ``grpc.aio.secure_channel``. It reads the attributes aetcd 1.0's constructor
sets, which is why the plugin pins ``aetcd`` below 1.1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd
import aetcd.client
import aetcd.rpc
import aetcd.watcher
import grpc

from kitecore.storage import InvalidInputError

from .url import EtcdURL

__all__ = ["TLSClient", "tls_credentials"]


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"etcd {what} file {path!r}: {exc.strerror or exc}") from None


def tls_credentials(url: EtcdURL) -> grpc.ChannelCredentials:
    """gRPC credentials for ``url``: its CA (or the system's), its client certificate if any."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(url.ca_file, "ca") if url.ca_file else None,
        private_key=_read(url.key_file, "key") if url.key_file else None,
        certificate_chain=_read(url.cert_file, "cert") if url.cert_file else None,
    )


class TLSClient(aetcd.Client):  # type: ignore[misc]  # aetcd ships no type hints
    """An :class:`aetcd.Client` whose channel is TLS with :attr:`credentials`."""

    credentials: grpc.ChannelCredentials | None = None
    # what aetcd 1.0's constructor sets and connect() reads (annotations only: aetcd is untyped)
    _connected: asyncio.Event
    _is_connecting: bool
    _connect_wait_timeout: float
    _host: str
    _port: int
    _options: dict[str, object]
    _username: str | None
    _password: str | None
    _timeout: float | None

    # aetcd's decorator maps grpc errors to aetcd's exceptions, as on aetcd's own connect
    @aetcd.client._handle_errors  # type: ignore[untyped-decorator]  # aetcd is untyped
    async def connect(self) -> None:
        """Connect as aetcd does, over a TLS channel."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task connects: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        if self.credentials is None:
            raise RuntimeError("TLSClient.credentials must be set before connecting")
        try:
            self._is_connecting = True
            target = f"{self._host}:{self._port}"
            self.channel = grpc.aio.secure_channel(
                target, self.credentials, options=list(self._options.items())
            )
            if self._username is not None and self._password is not None:
                self.auth_stub = aetcd.rpc.AuthStub(self.channel)
                request = aetcd.rpc.AuthenticateRequest(
                    name=self._username, password=self._password
                )
                answer = await self.auth_stub.Authenticate(request, timeout=self._timeout)
                self.metadata = (("token", answer.token),)
            self.kvstub = aetcd.rpc.KVStub(self.channel)
            self.clusterstub = aetcd.rpc.ClusterStub(self.channel)
            self.leasestub = aetcd.rpc.LeaseStub(self.channel)
            self.maintenancestub = aetcd.rpc.MaintenanceStub(self.channel)
            self._watcher = aetcd.watcher.Watcher(
                aetcd.rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False
