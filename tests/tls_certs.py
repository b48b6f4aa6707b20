"""Certificates for TLS tests, made in the test with ``trustme``: a throwaway CA, a server
certificate for 127.0.0.1 and localhost, a client certificate, and what the bad-input tests
need (an expired certificate, one for another host, a second CA nobody trusts)."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["TLSFiles", "make_tls_files"]

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TLSFiles:
    """PEM files in one directory; ``ca`` signed the server and client certificates."""

    directory: Path
    ca: trustme.CA
    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def issue(self, name: str, *hosts: str, expired: bool = False) -> tuple[str, str]:
        """Another certificate of ``ca`` for ``hosts``: (cert file, key file); ``expired``:
        valid last month, expired yesterday."""
        if expired:
            now = datetime.datetime.now(datetime.timezone.utc)
            cert = self.ca.issue_cert(
                *hosts,
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            )
        else:
            cert = self.ca.issue_cert(*hosts)
        return _write(self.directory, name, cert)

    def server_context(self) -> ssl.SSLContext:
        """A plain server context with the server certificate (for non-kite servers)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def make_tls_files(directory: Path) -> TLSFiles:
    """A new CA and its server and client certificates under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert, server_key = _write(directory, "server", ca.issue_cert(*HOSTS))
    client_cert, client_key = _write(directory, "client", ca.issue_cert("client@example.com"))
    return TLSFiles(directory, ca, str(ca_file), server_cert, server_key, client_cert, client_key)


def _write(directory: Path, name: str, cert: trustme.LeafCert) -> tuple[str, str]:
    cert_file = directory / f"{name}.pem"
    key_file = directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    return str(cert_file), str(key_file)
