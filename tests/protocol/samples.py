"""Wire samples from protocol.md and small helpers shared by the protocol tests."""

from __future__ import annotations

from typing import Any

# protocol.md §2.1 (Go request), compacted.
GO_REQUEST = (
    '{"method":"square","arguments":[{"kite":{"name":"exp2","username":"alice",'
    '"id":"0b6f9e1c","environment":"production","region":"eu","version":"1.0.0",'
    '"hostname":"host1"},"authentication":{"type":"token","key":"eyJhbGciOiJSUzI1NiIs"},'
    '"responseCallback":"[Function]","withArgs":[4]}],"callbacks":{"0":[0,"responseCallback"]}}'
)
GO_RESPONSE = '{"method":0,"arguments":[{"error":null,"result":16}],"callbacks":{}}'
GO_PING = '{"method":6,"arguments":[],"callbacks":{}}'
# protocol.md §14 (kite.js client request): string path "0", links, key order differs.
KITEJS_REQUEST = (
    '{"arguments":[{"kite":{"name":"js","username":"bob","id":"x","environment":"dev",'
    '"region":"r","version":"1.0.0","hostname":"h"},"withArgs":4,'
    '"responseCallback":"[Function]"}],"callbacks":{"1":["0","responseCallback"]},'
    '"links":[],"method":"square"}'
)


class Recorder:
    """A register callback handing out ids 0, 1, 2... and remembering the functions."""

    def __init__(self, start: int = 0) -> None:
        self.next_id = start
        self.functions: dict[int, Any] = {}

    def __call__(self, fn: Any) -> int:
        cid = self.next_id
        self.next_id += 1
        self.functions[cid] = fn
        return cid


def proxy(cid: int) -> tuple[str, int]:
    return ("proxy", cid)
