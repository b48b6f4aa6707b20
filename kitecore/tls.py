"""TLS for kites: the :class:`ssl.SSLContext` a kite serves with and the one it dials with.

Both are built from :class:`~kitecore.config.Config` (README, "TLS"):

* serving: ``tls_cert_file`` + ``tls_key_file`` make the kite serve ``https://`` / ``wss://``;
  ``tls_client_ca_file`` makes it require a client certificate signed by that CA (mutual TLS).
* dialing ``https://`` / ``wss://``: certificates are verified (chain and host name) against
  the system's CAs plus ``tls_ca_file``; ``tls_client_cert_file`` + ``tls_client_key_file``
  are presented when the server asks for a client certificate. ``tls_insecure`` turns
  verification off: a WARNING says so, once per process, and it is never implied.

Both contexts use only the standard :mod:`ssl` module; TLS 1.2 is the oldest version accepted.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitecore.config import Config

__all__ = [
    "TLSConfigError",
    "add_tls_options",
    "apply_tls_options",
    "client_context",
    "is_secure_url",
    "server_context",
    "tls_failure_hint",
]

logger = logging.getLogger(__name__)

_SECURE_SCHEMES = frozenset({"https", "wss"})
_insecure_warned = False
_warn_lock = threading.Lock()


class TLSConfigError(ValueError):
    """The TLS settings cannot be used (a certificate without its key, a file that is missing
    or not PEM...); the message names the setting and the file."""


def is_secure_url(url: str) -> bool:
    """Whether ``url`` is dialed over TLS (``https://`` or ``wss://``)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in _SECURE_SCHEMES


#: (command-line option destination, Config field) of :func:`add_tls_options`
_SERVING_OPTIONS = (
    ("tls_cert", "tls_cert_file"),
    ("tls_key", "tls_key_file"),
    ("tls_client_ca", "tls_client_ca_file"),
)


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``, ``--tls-key`` and ``--tls-client-ca`` for a command that serves a kite
    (``kite kontrol``, ``kite proxy``...); :func:`apply_tls_options` puts them in a config."""
    group = parser.add_argument_group('TLS (README, "TLS"; the KITE_TLS_* variables work too)')
    group.add_argument("--tls-cert", help="serve https:// with this certificate chain (PEM)")
    group.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    group.add_argument(
        "--tls-client-ca",
        help="require client certificates signed by these CAs (PEM): mutual TLS",
    )


def apply_tls_options(args: argparse.Namespace, config: Config) -> None:
    """Copy the options of :func:`add_tls_options` that were given into ``config`` (over its
    ``KITE_TLS_*`` values)."""
    for option, field in _SERVING_OPTIONS:
        value = getattr(args, option, None)
        if value:
            setattr(config, field, value)


def server_context(config: Config) -> ssl.SSLContext | None:
    """The context a kite serves with, or ``None`` when ``config`` sets no certificate.

    Raises :class:`TLSConfigError` when only one of ``tls_cert_file`` / ``tls_key_file`` is
    set, or a file cannot be loaded.
    """
    cert, key = config.tls_cert_file, config.tls_key_file
    if not cert and not key:
        if config.tls_client_ca_file:
            raise TLSConfigError(
                "tls_client_ca_file (KITE_TLS_CLIENT_CA_FILE) needs tls_cert_file and "
                "tls_key_file: client certificates are only asked for over TLS"
            )
        return None
    if not cert or not key:
        missing = (
            "tls_key_file (KITE_TLS_KEY_FILE)" if cert else "tls_cert_file (KITE_TLS_CERT_FILE)"
        )
        raise TLSConfigError(
            f"serving TLS needs both a certificate and its key: {missing} is unset"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key, "tls_cert_file", "tls_key_file")
    if config.tls_client_ca_file:
        _load_cas(context, config.tls_client_ca_file, "tls_client_ca_file")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(config: Config) -> ssl.SSLContext:
    """The context a kite dials ``https://`` / ``wss://`` URLs with.

    Verifies the server's certificate chain and host name against the system's CAs and
    ``tls_ca_file``; presents ``tls_client_cert_file`` when set. With ``tls_insecure`` it
    verifies nothing, after a WARNING (logged once per process).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.tls_ca_file:
        _load_cas(context, config.tls_ca_file, "tls_ca_file")
    cert, key = config.tls_client_cert_file, config.tls_client_key_file
    if cert or key:
        if not cert:
            raise TLSConfigError(
                "tls_client_key_file (KITE_TLS_CLIENT_KEY_FILE) is set but "
                "tls_client_cert_file (KITE_TLS_CLIENT_CERT_FILE) is not"
            )
        # the key may be in the certificate's file: then tls_client_key_file stays unset
        _load_chain(context, cert, key or None, "tls_client_cert_file", "tls_client_key_file")
    if config.tls_insecure:
        _warn_insecure()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _warn_insecure() -> None:
    global _insecure_warned
    with _warn_lock:
        if _insecure_warned:
            return
        _insecure_warned = True
    logger.warning(
        "TLS certificate verification is OFF (KITE_TLS_INSECURE / Config.tls_insecure): "
        "this process trusts any server certificate, so anyone on the path can read and "
        "change its calls. Use KITE_TLS_CA_FILE to trust a private CA instead."
    )


def _setting(name: str) -> str:
    """A config field with its environment variable: ``tls_ca_file (KITE_TLS_CA_FILE)``."""
    return f"{name} (KITE_{name.upper()})"


def _load_chain(
    context: ssl.SSLContext, cert: str, key: str | None, cert_name: str, key_name: str
) -> None:
    for name, path in ((cert_name, cert), (key_name, key)):
        if path is not None and not os.path.isfile(path):
            raise TLSConfigError(f"{_setting(name)}: no such file: {path}")
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"{_setting(cert_name)}={cert!r} / {_setting(key_name)}={key!r}: cannot load the "
            "certificate and "
            f"its key (PEM files, the key matching the certificate): {exc}"
        ) from None


def _load_cas(context: ssl.SSLContext, cafile: str, name: str) -> None:
    if not os.path.isfile(cafile):
        raise TLSConfigError(f"{_setting(name)}: no such file: {cafile}")
    try:
        context.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"{_setting(name)}={cafile!r}: not a PEM CA certificate: {exc}"
        ) from None


def tls_failure_hint(exc: BaseException, secure: bool = True) -> str | None:
    """A plain-words cause for a failed dial (``exc`` or one of its causes) that TLS explains,
    or ``None``. ``secure``: the URL was ``https://``/``wss://``."""
    from kitecore.http.errors import HTTPProtocolError

    seen: set[int] = set()
    current: BaseException | None = exc
    closed_early = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        closed_early = closed_early or isinstance(current, HTTPProtocolError)
        if isinstance(current, ssl.SSLCertVerificationError):
            detail = current.verify_message or current.reason or str(current)
            return f"the server's certificate was refused: {detail}"
        if isinstance(current, ssl.SSLError):
            reason = (current.reason or "").upper()
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL"):
                return "the server does not speak TLS on that port (dial http:// or ws:// there)"
            if "CERTIFICATE" in reason or "HANDSHAKE_FAILURE" in reason:
                return (
                    f"the server refused the TLS handshake ({current.reason}): it may require "
                    "a client certificate it trusts (KITE_TLS_CLIENT_CERT_FILE)"
                )
            return f"TLS failed: {current.reason or current}"
        current = current.__cause__ or current.__context__
    if closed_early and not secure:
        return (
            f"{exc}; the server closed the connection without answering: a kite that serves "
            "TLS does so to plain HTTP (dial https:// or wss:// there)"
        )
    if closed_early:
        # TLS 1.3 checks the client's certificate after the client's side of the handshake
        # is done, and the server's refusal reaches the client as a closed connection
        return (
            f"{exc}; the server closed the TLS connection without answering: a kite that "
            "requires client certificates (mutual TLS) does so when it gets none it trusts "
            "(set KITE_TLS_CLIENT_CERT_FILE / KITE_TLS_CLIENT_KEY_FILE; the server's log "
            "names the cause)"
        )
    return None
