"""The smallest kite plugin: one method (``hello.greet``) and one transport (``hello``).

A template: copy this folder, rename the distribution, the module and the entry point, and
keep the hooks you need (every hook is in :mod:`kitecore.hookspecs`; docs/writing-a-plugin.md
walks through them). The project's own tests build and install this folder into a fresh
virtualenv to prove that an installed distribution's ``kite`` entry point is found and its
hooks run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from anyio.streams.stapled import StapledObjectStream

from kitecore import Kite, Request, hookimpl
from kitecore.transport import AcceptHandler, DialOptions, MessageStream, Transport


class HelloTransport:
    """Dials ``hello://`` URLs to an in-memory echo: every message sent comes back."""

    name = "hello"
    priority = 0

    def accepts(self, url: str) -> bool:
        """Only ``hello://`` URLs."""
        return url.startswith("hello://")

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        """A stream whose sends are its own receives."""
        send, receive = anyio.create_memory_object_stream[str](16)
        return StapledObjectStream(send, receive)

    def mount(self, server: Any, prefix: str, on_accept: AcceptHandler) -> None:
        """No server side."""


async def greet(request: Request) -> str:
    """``hello.greet``: greets the caller by username."""
    return f"hello, {request.username or 'stranger'}"


@hookimpl
def kite_register_methods(kite: Kite) -> None:
    """Add ``hello.greet`` to every kite."""
    kite.handle("hello.greet")(greet)


@hookimpl
def kite_register_transports(register: Callable[[Transport], None]) -> None:
    """Provide the ``hello`` transport."""
    register(HelloTransport())
