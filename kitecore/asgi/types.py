"""The ASGI 3 callable's types, spelled out here so the core needs no ASGI package.

Messages are plain dicts whose keys depend on their ``type`` (the ASGI specification lists
them), hence the ``Any`` values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

#: The connection scope: ``type`` (``http``, ``websocket``, ``lifespan``), ``path``, ...
Scope = MutableMapping[str, Any]
#: One event to or from the server (``{"type": "http.request", "body": b"..."}``).
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
