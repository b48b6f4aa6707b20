"""Key rotation on a running Kontrol, seen from the kites it already knows.

The full rotation story (Go's TestUpdateKeys: Kontrol restarted with a rotated pair, kites
re-registered and re-keyed by themselves, old tokens refused with ``token is expired`` and
renewed) is end to end in ``tests/faults/test_kontrol_key_rotation.py``. What is left here is
rotating with ``Kontrol.rotate_key()`` while the kites stay connected: a kite that refuses a
token of its Kontrol asks Kontrol for its current key once (``kitecore.discovery.keys``) and
checks the token again.
"""

from __future__ import annotations

import anyio
import pytest

pytestmark = pytest.mark.anyio


async def test_rotation_on_a_running_kontrol_reaches_registered_kites(kontrol, make_kite):
    math = await make_kite("math", kontrol.create_kite_key("bob"))
    caller = await make_kite("caller", kontrol.create_kite_key("alice"), register=False)
    new_pair = await kontrol.rotate_key()
    # a caller coming after the rotation gets a token signed with the new key
    [client] = await caller.get_kites(username="bob", environment="production", name="math")
    async with client:
        with anyio.fail_after(10):
            assert await client.tell("whoami") == "alice"
    assert math.config.kontrol_key == new_pair.public
