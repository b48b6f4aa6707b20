"""The test application of the official SockJS protocol suite (``sockjs-protocol``).

``python -m kite_transport_sockjs.conformance --port N`` serves on ``http://127.0.0.1:N/``:

* ``/echo``: sends back every message (streaming response limit 4096 bytes);
* ``/close``: closes every session at once with ``3000 "Go away!"``;
* ``/disabled_websocket_echo``: echo with websocket off (``/info`` says so);
* ``/cookie_needed_echo``: echo with the JSESSIONID cookie on.

Each service also has raw websocket on (``/<service>/websocket``), as the suite expects.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ObjectStream

from kitecore.http.server import HTTPServer
from kitecore.transport import PeerInfo

from .config import SockJSConfig
from .server import SockJSService

__all__ = ["SERVICES", "build_server", "close_app", "echo_app", "main"]

logger = logging.getLogger(__name__)

App = Callable[[ObjectStream[str], PeerInfo], Awaitable[None]]


async def echo_app(stream: ObjectStream[str], peer: PeerInfo) -> None:
    """Send every received message back until the session ends."""
    try:
        while True:
            message = await stream.receive()
            await stream.send(message)
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass


async def close_app(stream: ObjectStream[str], peer: PeerInfo) -> None:
    """Close the session at once with ``3000 "Go away!"``."""
    await stream.aclose(3000, "Go away!")  # type: ignore[call-arg]


_BASE = SockJSConfig(response_limit=4096, raw_websocket=True)

#: prefix -> (config, application) of the suite's four services.
SERVICES: dict[str, tuple[SockJSConfig, App]] = {
    "/echo": (_BASE, echo_app),
    "/close": (_BASE, close_app),
    "/disabled_websocket_echo": (
        SockJSConfig(response_limit=4096, raw_websocket=True, websocket=False),
        echo_app,
    ),
    "/cookie_needed_echo": (
        SockJSConfig(response_limit=4096, raw_websocket=True, jsessionid=True),
        echo_app,
    ),
}


def build_server(
    *,
    heartbeat_delay: float | None = None,
    disconnect_delay: float | None = None,
) -> tuple[HTTPServer, dict[str, SockJSService]]:
    """An :class:`HTTPServer` with the four services mounted (not yet serving)."""
    server = HTTPServer()
    services: dict[str, SockJSService] = {}
    for prefix, (config, app) in SERVICES.items():
        if heartbeat_delay is not None:
            config = dataclasses.replace(config, heartbeat_delay=heartbeat_delay)
        if disconnect_delay is not None:
            config = dataclasses.replace(config, disconnect_delay=disconnect_delay)
        service = SockJSService(config, app)
        service.mount(server, prefix)
        services[prefix] = service
    return server, services


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--heartbeat", type=float, default=25.0, help="heartbeat delay (s)")
    parser.add_argument("--disconnect", type=float, default=5.0, help="disconnect delay (s)")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    server, _ = build_server(heartbeat_delay=args.heartbeat, disconnect_delay=args.disconnect)

    async def run() -> None:
        await server.serve(args.host, args.port)

    try:
        anyio.run(run, backend=args.backend)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
