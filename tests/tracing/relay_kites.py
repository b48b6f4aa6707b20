"""The three traced kites the tracing tests call through: A, B (whose ``relay`` calls C's
``square`` from inside its handler) and C."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from kite_tracing_otel import KiteTracing

from kitecore import Client, Kite
from kitecore.testing import square


@dataclass
class RelayKites:
    a: Kite
    b: Kite
    c: Kite
    #: A's client of B (``relay``).
    a_to_b: Client


@asynccontextmanager
async def relay_kites(
    make_kite: Any, tracing: KiteTracing, c_methods: Mapping[str, Callable[..., Any]]
) -> AsyncIterator[RelayKites]:
    """C serving ``square`` and ``c_methods``, B relaying to C, A connected to B; tracing
    installed on all three (for the block's duration: the kites end with the test)."""
    c = await make_kite("c", methods={"square": square, **c_methods})
    tracing.install(c)
    to_c: list[Client] = []

    async def relay(r: Any) -> Any:  # B calls C from inside its handler
        return await to_c[0].tell("square", r.args.one(float))

    b = await make_kite("b", methods={"relay": relay})
    tracing.install(b)
    a = await make_kite("a")
    tracing.install(a)
    async with b.new_client(c.url) as b_to_c, a.new_client(b.url) as a_to_b:
        to_c.append(b_to_c)
        yield RelayKites(a, b, c, a_to_b)
