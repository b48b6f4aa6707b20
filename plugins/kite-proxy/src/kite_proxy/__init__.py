"""kite-proxy: reach kites behind NAT or a firewall, wire-compatible with Go's kite proxies.

* :class:`ReverseProxy` (``kite proxy``): a public kite ``proxy`` forwarding
  ``/proxy/<kiteID>/...`` to kites on private addresses.
* :class:`TunnelProxy` (``kite tunnelproxy``): a public kite ``tunnelproxy`` for kites with no
  reachable address at all; they dial out and serve each caller through a tunnel.
* :func:`register_to_proxy` / :func:`register_to_tunnel`: keep a kite registered through one
  (``KITE_PROXY_URL`` or Kontrol), with Kontrol told the public URL.
* ``kite.tunnel``, added to every kite by the plugin.
"""

from __future__ import annotations

from .kite_side import PROXY_URL_ENV, proxy_backoff, register_to_proxy, register_to_tunnel
from .pipe import MAX_QUEUED_MESSAGES, pipe
from .reverse import ReverseProxy
from .tokens import TunnelTokenError, TunnelTokens
from .tunnel import TunnelProxy

__all__ = [
    "MAX_QUEUED_MESSAGES",
    "PROXY_URL_ENV",
    "ReverseProxy",
    "TunnelProxy",
    "TunnelTokenError",
    "TunnelTokens",
    "pipe",
    "proxy_backoff",
    "register_to_proxy",
    "register_to_tunnel",
]
