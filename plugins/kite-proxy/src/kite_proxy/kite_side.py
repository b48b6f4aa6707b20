"""The kite's side: ``kite.tunnel``, :func:`register_to_proxy` and :func:`register_to_tunnel`.

``register_to_*`` run as a task for as long as the kite should be reachable through a proxy:
find one (``KITE_PROXY_URL``, dialed with the kite.key, else Kontrol's ``getKites`` for
``proxy``/``tunnelproxy`` of the kite.key's Kontrol user in the kite's environment), call its
``register``, register with Kontrol under the public URL it answers, and start over (with
backoff) when the proxy goes away.

``kite.tunnel({url})`` is honoured only on the connection to the tunnel proxy this kite
registered with: the kite dials ``url`` (a SockJS websocket) and serves it like an accepted
connection, so every call through the tunnel is authenticated as if the caller had dialed the
kite itself (Go's kite trusts such calls unauthenticated).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from kite_transport_sockjs.client import WebSocketClient
from kite_transport_sockjs.frames import OpenFrame, parse_frame

from kitecore import Authentication, Client, GenericError, Kite, Request
from kitecore.backoff import Backoff
from kitecore.discovery import unverified_claims
from kitecore.http import HandshakeError, connect_websocket
from kitecore.transport import PeerInfo

__all__ = [
    "PROXY_URL_ENV",
    "proxy_backoff",
    "register_to_proxy",
    "register_to_tunnel",
    "tunnel_method",
]

logger = logging.getLogger(__name__)

#: Dial this proxy (with the kite.key) instead of asking Kontrol for one.
PROXY_URL_ENV = "KITE_PROXY_URL"


def proxy_backoff() -> Backoff:
    """Waits between attempts to reach a proxy: 0.5 s growing to at most 15 s."""
    return Backoff(initial=0.5, maximum=15.0)


@dataclass(eq=False)
class _TunnelHost:
    """Where a kite's tunnels run, and the proxy connection allowed to ask for them."""

    group: anyio.abc.TaskGroup
    client: Client | None = None
    tunnels: set[Any] = field(default_factory=set)


_hosts: weakref.WeakKeyDictionary[Kite, _TunnelHost] = weakref.WeakKeyDictionary()
#: Kites of one process take the proxies Kontrol lists in turn (from a random start), so
#: several proxies share the load.
_turns = itertools.count(random.randrange(1 << 16))


# -- kite.tunnel ----------------------------------------------------------------------------------


async def tunnel_method(request: Request) -> None:
    """``kite.tunnel({url})``: dial ``url`` and serve it as an accepted connection; null at once."""
    kite = request.local_kite
    host = _hosts.get(kite)
    if host is None or host.client is None or request.client is not host.client:
        raise GenericError(
            "kite.tunnel is accepted only from the tunnel proxy this kite registered with"
        )
    options = request.args.mapping(0)
    url = options.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("ws", "wss"):
        raise GenericError("kite.tunnel needs {url: 'ws(s)://...'}")
    host.group.start_soon(_serve_tunnel, kite, url)
    return None


async def _serve_tunnel(kite: Kite, url: str) -> None:
    try:
        ws = await connect_websocket(
            url,
            handshake_timeout=kite.config.handshake_timeout,
            max_message_size=kite.config.max_message_size,
            ssl_context=kite.ssl_context_for(url),
        )
    except (OSError, TimeoutError, HandshakeError) as exc:
        logger.warning("could not open the tunnel the proxy asked for: %r", exc)
        return
    try:
        with anyio.fail_after(kite.config.handshake_timeout):
            frame = parse_frame(await ws.receive())
    except Exception as exc:
        logger.warning("the tunnel did not open: %r", exc)
        await ws.aclose()
        return
    if not isinstance(frame, OpenFrame):
        logger.warning("the tunnel did not open: %r", frame)
        await ws.aclose()
        return
    parts = urlsplit(url)
    peer = PeerInfo("tunnel", f"{parts.hostname}:{parts.port or 80}")
    logger.debug("serving a tunnel from %s", peer.remote_address)
    await kite.serve_stream(WebSocketClient(ws), peer)


# -- finding a proxy ------------------------------------------------------------------------------


def _kontrol_user(kite: Kite) -> str:
    if kite.config.kontrol_user:
        return kite.config.kontrol_user
    try:
        return str(unverified_claims(kite.config.kite_key).get("iss", ""))
    except ValueError:
        return ""


async def _find_proxy(kite: Kite, name: str, query: dict[str, str] | None) -> Client:
    """An undialed client of a proxy: ``KITE_PROXY_URL`` or one Kontrol lists (at random)."""
    url = os.environ.get(PROXY_URL_ENV, "")
    if url:
        return kite.new_client(url, auth=Authentication("kiteKey", kite.config.kite_key))
    wanted = {"name": name, "environment": kite.config.environment}
    user = _kontrol_user(kite)
    if user:
        wanted["username"] = user
    wanted.update(query or {})
    clients = sorted(await kite.get_kites(wanted), key=lambda client: client.url or "")
    return clients[next(_turns) % len(clients)]


async def _register_loop(
    kite: Kite,
    name: str,
    own_url: str | None,
    query: dict[str, str] | None,
    backoff: Backoff,
    task_status: anyio.abc.TaskStatus[str],
    host: _TunnelHost | None,
) -> None:
    started = False
    async with contextlib.AsyncExitStack() as stack:
        if kite.server is None and kite.config.kontrol_url:
            await stack.enter_async_context(kite.kontrol_client)  # a kite that does not listen
        while True:
            try:
                proxy = await _find_proxy(kite, name, query)
                async with proxy:
                    register_url = own_url if own_url is not None else kite.url
                    public = await proxy.tell("register", register_url, timeout=kite.config.timeout)
                    if not isinstance(public, str) or not public:
                        raise GenericError(f"the proxy answered {public!r} to register")
                    if host is not None:
                        host.client = proxy
                    if kite.config.kontrol_url:
                        await kite.kontrol_client.register(public)
                        await kite.register_forever(public)
                    logger.info("reachable through %s at %s", proxy.url, public)
                    backoff.reset()
                    if not started:
                        started = True
                        task_status.started(public)
                    connection = proxy.connection
                    if connection is not None:
                        await connection.wait_closed()
                    logger.info("lost the proxy at %s; looking for one again", proxy.url)
            except Exception as exc:
                delay = backoff.next()
                logger.warning(
                    "registering to a %s failed, retrying in %.1fs: %s", name, delay, exc
                )
                await anyio.sleep(delay)
            finally:
                if host is not None:
                    host.client = None


async def register_to_proxy(
    kite: Kite,
    url: str | None = None,
    *,
    query: dict[str, str] | None = None,
    backoff: Backoff | None = None,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Stay reachable through a reverse proxy (``proxy``) until cancelled.

    ``url`` is the kite's own URL the proxy forwards to (default: the URL the kite serves on);
    ``query`` adds fields to the Kontrol query. ``await group.start(register_to_proxy, kite)``
    returns the public URL once the first registration succeeded.
    """
    await _register_loop(kite, "proxy", url, query, backoff or proxy_backoff(), task_status, None)


async def register_to_tunnel(
    kite: Kite,
    *,
    query: dict[str, str] | None = None,
    backoff: Backoff | None = None,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Stay reachable through a tunnel proxy (``tunnelproxy``) until cancelled; the kite needs
    no listening port (it dials out for every caller). Returns nothing;
    ``await group.start(register_to_tunnel, kite)`` gives the public URL."""
    async with anyio.create_task_group() as group:
        host = _TunnelHost(group)
        _hosts[kite] = host
        try:
            await _register_loop(
                kite, "tunnelproxy", "", query, backoff or proxy_backoff(), task_status, host
            )
        finally:
            if _hosts.get(kite) is host:
                del _hosts[kite]
            group.cancel_scope.cancel()
