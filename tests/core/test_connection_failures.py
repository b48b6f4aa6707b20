"""A send that finds the connection dead: the caller gets an error, nothing is left dangling."""

from __future__ import annotations

import gc

import anyio
import pytest

from kitecore.connection import Connection
from kitecore.protocol.envelope import RequestEncoder
from kitecore.protocol.errors import DisconnectError, SendError
from kitecore.transport import PeerInfo

pytestmark = pytest.mark.anyio


class DyingStream(anyio.abc.ObjectStream[str]):
    """Takes writes until ``alive`` is False, then fails them as a reset socket would."""

    pending_bytes = 0  # the write_nowait contract: what a partial write left over

    def __init__(self) -> None:
        self.alive = True
        self.sent: list[str] = []

    def write_nowait(self, items: list[str]) -> bool:
        if not self.alive:
            raise anyio.BrokenResourceError("connection reset")
        self.sent.extend(items)
        return True

    async def flush(self) -> None:  # (kitecore.transport.DirectWrite: nothing is ever left)
        pass

    async def send(self, item: str) -> None:
        self.write_nowait([item])

    async def receive(self) -> str:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.alive = False


ENCODER = RequestEncoder({}, None)


async def no_dispatch(connection, method, arguments):  # pragma: no cover - never called
    raise AssertionError


async def test_failed_send_fails_the_waiting_calls_and_leaves_nothing_unretrieved():
    stream = DyingStream()
    connection = Connection(stream, no_dispatch, peer=PeerInfo("test"), dialed=True)
    first, first_id = connection.call("a", ENCODER, [], {})
    assert connection.pending_callbacks == 1
    stream.alive = False
    with pytest.raises(SendError, match="connection lost"):
        connection.call("b", ENCODER, [], {})
    # the call already waiting hears of the disconnect; the failed one left no pending call
    with pytest.raises(DisconnectError):
        await connection.wait_response(first, first_id, 5)
    assert connection.pending_callbacks == 0
    assert connection.closed
    gc.collect()  # an unretrieved failed future would be reported here (and fail the test)
    await anyio.lowlevel.checkpoint()
