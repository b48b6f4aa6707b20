"""Kontrol key rotation end to end (Go's TestUpdateKeys): only Kontrol is restarted.

A real Kontrol process serves on a fixed port from a data directory; kites keep themselves
registered. Kontrol stops, its key pair is rotated on disk (the old pair retired, as
``KeyFiles.rotate`` does), and it starts again on the same port. The kites reconnect and
register again by themselves, and get their kite.keys re-signed with the new pair and the new
public key. A token issued before the rotation is then refused with ``token is expired``; the
client Alice found through Kontrol before the rotation recovers by renewing its token, on the
same connection, without anything being restarted.
"""

from __future__ import annotations

import contextlib

import anyio
import pytest
from kite_auth_token import verify_kite_key, verify_token
from kite_kontrol.keyfiles import KeyFiles, new_key_pair
from kite_kontrol.testing import KONTROL_USER, KontrolProcess, machine_key

from kitecore import Authentication, AuthenticationError, Config, Kite
from kitecore.backoff import Backoff
from kitecore.plugins import PluginRegistry
from kitecore.testing import whoami

pytestmark = pytest.mark.anyio


def quick_reconnect(kite: Kite) -> None:
    """Reconnect to Kontrol within a fraction of a second (the default grows to 60 s)."""
    client = kite.kontrol_client.client
    assert client is not None
    client.backoff = Backoff(initial=0.05, multiplier=1.5, randomization=0.5, maximum=0.3)


def second_registration(kite: Kite) -> anyio.Event:
    """An event set when ``kite`` (registered once already) registers again."""
    again = anyio.Event()
    kite.kontrol_client.on_register(lambda _result: again.set())
    return again


async def test_rotation_with_a_kontrol_restart(
    kontrol_process: KontrolProcess, base_config: Config, plugins: PluginRegistry
) -> None:
    url = kontrol_process.url
    old_public = KeyFiles(kontrol_process.data_dir).load_or_create()[0].public
    async with contextlib.AsyncExitStack() as stack:
        kites: dict[str, Kite] = {}
        for name, username in [("math", "bob"), ("caller", "alice")]:
            config = base_config.copy()
            config.environment = "production"
            kite = await stack.enter_async_context(
                Kite(name, "1.0.0", config=config, plugins=plugins)
            )
            config.apply_kite_key(await machine_key(kite, url, username))
            kite.handle("whoami", whoami)
            await kite.register_forever()
            with anyio.fail_after(10):
                await kite.kontrol_client.registered.wait()
            quick_reconnect(kite)
            kites[name] = kite
        math, caller = kites["math"], kites["caller"]
        assert math.config.kontrol_key == old_public
        [client] = await caller.get_kites(username="bob", environment="production", name="math")
        await stack.enter_async_context(client)
        assert await client.tell("whoami") == "alice"
        old_token = client.auth.key
        old_kite_keys = {name: kite.config.kite_key for name, kite in kites.items()}

        await kontrol_process.stop()
        new_pair = new_key_pair()
        KeyFiles(kontrol_process.data_dir).rotate(new_pair)
        registered_again = [second_registration(kite) for kite in kites.values()]
        await kontrol_process.start()
        with anyio.fail_after(10):  # the kites register again by themselves
            for event in registered_again:
                await event.wait()

        # the kites learnt the new key and got their kite.keys re-signed, in memory
        for name, kite in kites.items():
            assert kite.config.kontrol_key == new_pair.public
            assert kite.config.kite_key != old_kite_keys[name]
            new_claims = verify_kite_key(kite.config.kite_key, trust=new_pair.public)
            old_claims = verify_kite_key(old_kite_keys[name], trust=old_public)
            assert (new_claims.subject, new_claims.id) == (old_claims.subject, old_claims.id)

        # a token from before the rotation is refused as expired...
        async with caller.new_client(math.url, auth=Authentication("token", old_token)) as raw:
            with pytest.raises(AuthenticationError) as info:
                await raw.tell("whoami")
        assert info.value.message == "token: token is expired"

        # ...and the client found before the rotation renews it and goes on, same connection
        connection = client.connection
        assert await client.tell("whoami") == "alice"
        assert client.connection is connection
        assert client.auth.key != old_token
        claims = verify_token(
            client.auth.key, public_key=new_pair.public, issuer=KONTROL_USER, kite=math.identity
        )
        assert claims.subject == "alice"

        # and discovery through the restarted Kontrol serves tokens math accepts
        [again] = await caller.get_kites(id=math.id)
        async with again:
            assert await again.tell("whoami") == "alice"
