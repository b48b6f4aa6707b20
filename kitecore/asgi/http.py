"""Plain HTTP under ASGI: a scope becomes an :class:`~kitecore.http.HTTPRequest`, and
:class:`ASGIResponse` is the response object the kite's route handlers write to.

Route handlers (``async def handler(request, response)``) use only the response's public
surface, :class:`ResponseLike`; :class:`ASGIResponse` implements it on ASGI ``send``, so the
same handlers serve both the kite's own server and any ASGI server. A streamed response is
sent chunk by chunk as the handler writes (``more_body``), never buffered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qs

import anyio

from kitecore.asgi.types import Message, Scope, Send
from kitecore.http.headers import Headers
from kitecore.http.server import HTTPRequest

__all__ = ["ASGIResponse", "ResponseLike", "format_client", "make_request"]


class ResponseLike(Protocol):
    """What a route handler may use of its response object (``HTTPResponse`` has it too)."""

    disconnected: anyio.Event
    status: int | None
    started: bool
    finished: bool

    async def send(
        self, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None: ...

    async def start(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...


class ASGIResponse:
    """The answer to one ASGI ``http`` request: whole (:meth:`send`) or streamed
    (:meth:`start`, :meth:`write`, :meth:`end`).

    ``disconnected`` is set when the server reports ``http.disconnect`` (the client went
    away); writing after that raises :class:`anyio.BrokenResourceError`.
    """

    def __init__(self, send: Send, method: str) -> None:
        self._send = send
        self._head_only = method == "HEAD"
        self.disconnected = anyio.Event()
        self.status: int | None = None
        self.started = False
        self.finished = False

    async def send(
        self, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        """Send a whole response; ``Content-Length`` is added when missing."""
        header_list = list(headers)
        if not any(name.lower() == "content-length" for name, _ in header_list):
            header_list.append(("content-length", str(len(body))))
        await self.start(status, header_list)
        self.finished = True
        await self._emit({"type": "http.response.body", "body": b"" if self._head_only else body})

    async def start(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the status line and headers of a streamed response."""
        if self.started:
            raise RuntimeError("the response has already been started")
        self.started = True
        self.status = status
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        await self._emit({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, chunk: bytes) -> None:
        """Send one piece of a streamed response (an empty chunk is skipped)."""
        if not self.started:
            raise RuntimeError("call start() before write()")
        if self.finished:
            raise RuntimeError("the response is already complete")
        if chunk and not self._head_only:
            await self._emit({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        """Finish a streamed response."""
        if not self.started:
            raise RuntimeError("call start() before end()")
        if self.finished:
            return
        self.finished = True
        await self._emit({"type": "http.response.body", "body": b""})

    async def _emit(self, message: Message) -> None:
        if self.disconnected.is_set():
            raise anyio.BrokenResourceError("the client has disconnected")
        try:
            await self._send(message)
        except Exception as exc:  # each ASGI server has its own "client is gone" error
            self.disconnected.set()
            raise anyio.BrokenResourceError("the client has disconnected") from exc


def format_client(scope: Scope) -> str:
    """The scope's client address as ``host:port`` (``[v6]:port``), or ``""``."""
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def make_request(scope: Scope, path: str, method: str) -> HTTPRequest:
    """The :class:`HTTPRequest` for ``scope`` with ``path`` (the form that matched a route);
    the body is filled in later. Raises UnicodeDecodeError for a query that is not UTF-8."""
    raw_query: bytes = scope.get("query_string", b"")
    query_text = raw_query.decode("latin-1")
    query = parse_qs(query_text, keep_blank_values=True, errors="strict")
    target = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    if query_text:
        target += "?" + query_text
    headers = Headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    )
    return HTTPRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        remote_address=format_client(scope),
        target=target,
        http_version=str(scope.get("http_version", "1.1")),
    )
