"""A lean registering kite for ``bench/kontrol.py``: the wire protocol spoken directly.

The issue measures Kontrol, not our client: the full :class:`kitecore.Kite` client costs about
as much CPU per registration as Kontrol itself, so on a two-core machine it, not Kontrol, set the
rate. This peer does only what the wire needs, with every frame built before the clock starts:

1. TCP connect, a pre-built WebSocket upgrade request (``GET /kite``); the answer must be
   ``101`` with the ``Sec-WebSocket-Accept`` of our fixed key.
2. One masked text frame: a real ``register`` call (the kite's identity, ``kiteKey``
   authentication with a real kite.key, ``withArgs`` ``[{"url": ...}]`` and a response
   callback, id 0).
3. It reads until it has both the answer to ``register`` (a call of callback 0 whose
   ``error`` must be ``null`` and whose ``result`` must carry the URL) and Kontrol's
   ``kite.heartbeat`` call, which it answers with a success (``{"error": null, "result":
   null}`` on that call's response callback), as a kite does.
4. A close frame (1000); it waits for Kontrol's close frame, then closes the socket.

Anything else on the wire (an error answer, an unexpected frame, a short read) raises.

:class:`LeanQuerier` is the same for ``getKites``: one connection, one pre-built call per query
(a fresh response callback id each), the answer decoded and checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass

__all__ = ["LeanQuerier", "LeanRegistration", "build", "register"]

_KEY = base64.b64encode(b"kite-bench-lean!").decode()
_ACCEPT = base64.b64encode(
    hashlib.sha1((_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked, as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return header + mask + masked


@dataclass(frozen=True, slots=True)
class LeanRegistration:
    """The pre-built bytes of one registration."""

    url: str  # the URL registered
    opening: bytes  # the upgrade request followed by the register frame
    identity: dict[str, str]


_CLOSE = _masked_frame(0x8, struct.pack("!H", 1000))


def build(
    host: str, port: int, identity: dict[str, str], kite_key: str, url: str
) -> LeanRegistration:
    """The bytes that register ``identity`` at ``url`` on the Kontrol at ``host:port``."""
    upgrade = _upgrade_request(host, port)
    call = {
        "method": "register",
        "arguments": [
            {
                "kite": identity,
                "authentication": {"type": "kiteKey", "key": kite_key},
                "responseCallback": "[Function]",
                "withArgs": [{"url": url}],
            }
        ],
        "callbacks": {"0": [0, "responseCallback"]},
    }
    frame = _masked_frame(0x1, json.dumps(call, separators=(",", ":")).encode())
    return LeanRegistration(url, upgrade + frame, identity)


def _upgrade_request(host: str, port: int) -> bytes:
    return (
        f"GET /kite HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _heartbeat_answer(callback: int) -> bytes:
    message = {"method": callback, "arguments": [{"error": None, "result": None}], "callbacks": {}}
    return _masked_frame(0x1, json.dumps(message, separators=(",", ":")).encode())


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked, final): (opcode, payload)."""
    first, second = await reader.readexactly(2)
    if not first & 0x80 or second & 0x80:
        raise AssertionError(f"unexpected frame header {first:#x} {second:#x}")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def register(host: str, port: int, registration: LeanRegistration) -> None:
    """Register once over a fresh connection (see the module docs); raise on any failure."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(registration.opening)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 ") or _ACCEPT.encode() not in head:
            raise AssertionError(f"upgrade refused: {head[:200]!r}")
        answered = heartbeat = False
        while not (answered and heartbeat):
            opcode, payload = await _read_frame(reader)
            if opcode != 0x1:
                raise AssertionError(f"unexpected frame opcode {opcode} ({payload[:200]!r})")
            message = json.loads(payload)
            method = message["method"]
            if method == 0:  # the answer to register
                reply = message["arguments"][0]
                if reply.get("error") is not None or reply["result"]["url"] != registration.url:
                    raise AssertionError(f"register failed: {reply}")
                answered = True
            elif method == "kite.heartbeat":
                callbacks = message["callbacks"]
                callback = next(
                    int(i) for i, path in callbacks.items() if path[-1] == "responseCallback"
                )
                writer.write(_heartbeat_answer(callback))
                heartbeat = True
            else:
                raise AssertionError(f"unexpected message {message}")
        writer.write(_CLOSE)
        while True:
            opcode, payload = await _read_frame(reader)
            if opcode == 0x8:
                break
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class LeanQuerier:
    """``getKites`` over one raw WebSocket connection (see the module docs)."""

    def __init__(self, host: str, port: int, identity: dict[str, str], kite_key: str) -> None:
        self._address = (host, port)
        self._upgrade = _upgrade_request(host, port)
        self._identity = identity
        self._kite_key = kite_key
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def prepare(self, query: dict[str, str]) -> tuple[int, bytes]:
        """The frame of one ``getKites`` call (built ahead) and its response callback id."""
        callback = self._next_id
        self._next_id += 1
        call = {
            "method": "getKites",
            "arguments": [
                {
                    "kite": self._identity,
                    "authentication": {"type": "kiteKey", "key": self._kite_key},
                    "responseCallback": "[Function]",
                    "withArgs": [{"query": query}],
                }
            ],
            "callbacks": {str(callback): [0, "responseCallback"]},
        }
        return callback, _masked_frame(0x1, json.dumps(call, separators=(",", ":")).encode())

    async def __aenter__(self) -> LeanQuerier:
        self._reader, self._writer = await asyncio.open_connection(*self._address)
        self._writer.write(self._upgrade)
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 ") or _ACCEPT.encode() not in head:
            raise AssertionError(f"upgrade refused: {head[:200]!r}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(_CLOSE)
            while (await _read_frame(self._reader))[0] != 0x8:
                pass
        finally:
            self._writer.close()

    async def get(self, prepared: tuple[int, bytes]) -> list[dict[str, object]]:
        """Send a call made by :meth:`prepare`; the kites of its (successful) answer."""
        assert self._reader is not None and self._writer is not None
        callback, frame = prepared
        self._writer.write(frame)
        opcode, payload = await _read_frame(self._reader)
        message = json.loads(payload)
        if opcode != 0x1 or message["method"] != callback:
            raise AssertionError(f"unexpected message {message}")
        reply = message["arguments"][0]
        if reply.get("error") is not None:
            raise AssertionError(f"getKites failed: {reply}")
        kites: list[dict[str, object]] = reply["result"]["kites"]
        return kites
