"""Issue 15 §7 (third point): with ``disable_authentication`` an anonymous caller could write
to a kite's stdout (``kite.print``) and read its terminal (``kite.prompt``, ``kite.getPass``).

Those built-ins and ``kite.log`` now need an authenticated caller whatever the config says
(docs/limits.md, "Built-ins"); ``kite.ping``, ``kite.systemInfo`` and ``kite.heartbeat`` follow
the config. Attacked here: the real attack kite, which runs with authentication disabled.
"""

from __future__ import annotations

import anyio
import pytest
from hardening_helpers import square_answered

from kitecore import AuthenticationError, Kite
from kitecore.builtins import ALWAYS_AUTHENTICATED

pytestmark = pytest.mark.anyio

RSS_BOUND = 150 * 1024 * 1024
MARKER = "written-by-an-anonymous-caller"


async def test_terminal_and_log_builtins_refuse_anonymous_callers(kite_process):
    kite = await kite_process()
    caller = Kite("anonymous", "1.0.0")
    caller.config.disable_authentication = True
    caller.config.transport = "websocket"
    async with caller.new_client(kite.url) as client:
        for method in ALWAYS_AUTHENTICATED:
            for _ in range(20):
                with pytest.raises(AuthenticationError, match="No authentication information"):
                    await client.tell(method, MARKER)
        assert await client.tell("kite.ping") == "pong"
        assert (await client.tell("kite.systemInfo"))["state"] == "RUNNING"
    assert kite.alive
    assert await square_answered(kite.url)
    assert kite.rss() < RSS_BOUND
    assert kite.process is not None and kite.process.stdout is not None
    printed = b""
    with anyio.move_on_after(0.5):  # whatever the kite wrote is in the pipe by now
        printed = await kite.process.stdout.receive()
    assert MARKER.encode() not in printed
    assert MARKER not in kite.log_tail(1000)
