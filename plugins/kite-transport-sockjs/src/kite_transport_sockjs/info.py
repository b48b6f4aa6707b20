"""The two static documents of a SockJS service: the ``/info`` JSON and the iframe page."""

from __future__ import annotations

import hashlib
import json
import secrets

from .config import SockJSConfig

__all__ = ["iframe_etag", "iframe_page", "info_body"]

_IFRAME_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def info_body(config: SockJSConfig, entropy: int | None = None) -> str:
    """The ``/info`` JSON: websocket flag, cookie_needed, origins ``["*:*"]`` and ``entropy``,
    a random integer in [0, 2**32) (drawn from :mod:`secrets` unless given)."""
    if entropy is None:
        entropy = secrets.randbits(32)
    return json.dumps(
        {
            "websocket": config.websocket,
            "cookie_needed": config.jsessionid,
            "origins": ["*:*"],
            "entropy": entropy,
        },
        separators=(",", ":"),
    )


def iframe_page(sockjs_url: str) -> str:
    """The hidden iframe page that loads the SockJS client from ``sockjs_url``."""
    if '"' in sockjs_url or "<" in sockjs_url:
        raise ValueError("sockjs_url must not contain '\"' or '<'")
    return _IFRAME_TEMPLATE.format(sockjs_url=sockjs_url)


def iframe_etag(page: str) -> str:
    """A strong ETag for ``page``: its quoted MD5, stable as long as the page is."""
    return '"' + hashlib.md5(page.encode("utf-8"), usedforsecurity=False).hexdigest() + '"'
