"""Reading h11 events from an anyio byte stream (shared by the server and the client)."""

from __future__ import annotations

import anyio
import h11
from anyio.abc import ByteStream

READ_SIZE = 65536


async def next_event(conn: h11.Connection, stream: ByteStream) -> object:
    """The next h11 event, reading from ``stream`` as needed; EOF or a reset is fed to h11
    as end of data, so h11 reports ``ConnectionClosed`` or a ``RemoteProtocolError``."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            data = b""
        conn.receive_data(data)
