"""A kite registering with and discovering through a (fake) Kontrol, over real sockets."""

from __future__ import annotations

import anyio
import pytest
from fake_kontrol import FakeKontrol, wait_until

from kitecore import AuthenticationError, DialError, Kite, Query
from kitecore.backoff import Backoff
from kitecore.discovery import NoKitesError, RegisterResult

pytestmark = pytest.mark.anyio


async def whoami(r):
    return r.username


async def serving_kite(make_kite, config_for, kontrol, name="math", username="bob"):
    """A kite with a kite.key from ``kontrol``, serving ``whoami`` with authentication on."""
    return await make_kite(
        name, "1.0.0", methods={"whoami": whoami}, config=config_for(kontrol, username)
    )


async def test_register_once(make_kite, config_for, kontrol: FakeKontrol):
    math = await serving_kite(make_kite, config_for, kontrol)
    result = await math.register()
    assert result == RegisterResult(url=math.url)
    [entry] = kontrol.registrations
    assert entry.url == math.url
    assert entry.kite == math.identity  # username "bob" comes from the kite.key
    assert entry.kite.username == "bob"
    # Kontrol's kite.heartbeat on the kite's own connection was trusted without auth
    await wait_until(lambda: kontrol.heartbeat_pings >= 1)
    assert math.kontrol_client.registered.is_set()


async def test_register_applies_a_key_rotation(make_kite, config_for, kontrol, attacker_pair):
    math = await serving_kite(make_kite, config_for, kontrol)
    kontrol.register_extra = {"kiteKey": "new.kite.key", "publicKey": attacker_pair.public}
    seen = []
    math.kontrol_client.on_register(seen.append)
    result = await math.register("http://10.0.0.5:6000/kite")
    assert kontrol.registrations[-1].url == "http://10.0.0.5:6000/kite"
    assert seen == [result]
    assert math.config.kite_key == "new.kite.key"
    assert math.config.kontrol_key == attacker_pair.public


async def test_register_forever_reregisters_after_reconnect(make_kite, config_for, kontrol):
    math = await serving_kite(make_kite, config_for, kontrol)
    kontrol.refuse_registrations = 2  # the first attempts fail: retried with backoff
    await math.kontrol_client.register_forever(backoff=Backoff(initial=0.05, maximum=0.1))
    with anyio.fail_after(10):
        await math.kontrol_client.registered.wait()
    assert len(kontrol.calls_of("register")) == 3
    assert len(kontrol.registrations) == 1

    # Kontrol drops the kite's connection: the kite reconnects and registers again
    for client in list(kontrol.kite._clients):
        await client.close()
    await wait_until(lambda: len(kontrol.registrations) >= 2)
    assert [e.url for e in kontrol.registrations] == [math.url, math.url]


async def test_kontrol_calls_fail_at_once_when_kontrol_refuses(make_kite, kite_config):
    config = kite_config.copy()
    config.kontrol_url = "http://127.0.0.1:9/kite"  # discard port: nothing listens
    config.kite_key = "a.b.c"
    config.timeout = 60  # a refused connection is reported at once, not after the timeout
    kite = await make_kite("lonely", config=config)
    with anyio.fail_after(20), pytest.raises(DialError) as info:
        await kite.register()
    assert (
        info.value.message == "can't reach Kontrol: connection refused to http://127.0.0.1:9/kite"
    )


async def test_kontrol_calls_need_a_kite_key_and_url(make_kite, kite_config):
    kite = await make_kite("lonely", config=kite_config.copy())
    with pytest.raises(ValueError, match="no Kontrol URL"):
        await kite.get_kites(username="bob")
    kite.config.kontrol_url = "http://127.0.0.1:9/kite"
    with pytest.raises(ValueError, match=r"no kite\.key"):
        await kite.get_kites(username="bob")


async def test_get_kites_gives_clients_with_tokens(make_kite, config_for, kontrol):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))

    for query in (
        Query(username="bob", environment="production", name="math"),
        {"username": "bob", "name": "math"},
    ):
        [client] = await caller.get_kites(query)
        assert client.remote_kite == math.identity
        assert client.url == math.url
        assert client.auth.type == "token"
        assert not client.connected  # undialed, like Go's GetKites
        async with client:
            assert await client.tell("whoami") == "alice"  # verified by math's token authenticator

    [client] = await caller.get_kites(username="bob", name="math")
    assert kontrol.calls_of("getKites")[-1] == {
        "query": Query(username="bob", name="math").to_wire()
    }


async def test_get_kites_errors(make_kite, config_for, kontrol):
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    with pytest.raises(NoKitesError, match="no kites found"):
        await caller.get_kites(username="nobody")
    with pytest.raises(Exception, match="unknown query field"):
        await caller.get_kites(usernme="bob")


async def test_get_token_and_get_key(make_kite, config_for, kontrol, kontrol_pair):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    token = await caller.get_token(math.identity, force=True)
    assert token.count(".") == 2
    args = kontrol.calls_of("getToken")[-1]
    assert args == {**math.identity.query().to_wire(), "force": True}
    with pytest.raises(NoKitesError):
        await caller.get_token(Query(id="gone"))

    caller.config.kontrol_key = ""
    assert await caller.get_key() == kontrol_pair.public
    assert caller.config.kontrol_key == kontrol_pair.public


async def test_kontrol_client_without_a_running_kite(make_kite, config_for, kontrol, kite_plugins):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = Kite("script", "1.0.0", config=config_for(kontrol, "alice"), plugins=kite_plugins)
    async with caller.kontrol_client:
        [client] = await caller.get_kites(username="bob")
        async with client:
            assert await client.tell("whoami") == "alice"
    assert not caller.kontrol_client.client.connected


# --- token renewal ------------------------------------------------------------------------------


async def test_token_is_renewed_before_it_expires(make_kite, config_for, kontrol):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    kontrol.token_ttl = 60
    caller.kontrol_client.renew_before = 59.5  # renew about half a second after connecting
    [client] = await caller.get_kites(username="bob")
    first = client.auth.key
    async with client:
        await wait_until(lambda: client.auth.key != first)
        assert await client.tell("whoami") == "alice"
    # the renewer asked with the id-only query, without force
    assert kontrol.calls_of("getToken")[0] == Query(id=math.id).to_wire()


async def test_refused_token_is_renewed_at_once_and_the_call_retried(
    make_kite, config_for, kontrol, attacker_pair
):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    kontrol.signing_pair = attacker_pair  # getKites hands out tokens math does not accept
    [client] = await caller.get_kites(username="bob")
    kontrol.signing_pair = None
    async with client:
        assert await client.tell("whoami") == "alice"
    assert kontrol.calls_of("getToken") == [{**Query(id=math.id).to_wire(), "force": True}]


async def test_a_call_is_retried_only_once(make_kite, config_for, kontrol, attacker_pair):
    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    kontrol.signing_pair = attacker_pair  # every token is bad
    [client] = await caller.get_kites(username="bob")
    async with client:
        with pytest.raises(AuthenticationError, match="token: token is expired"):
            await client.tell("whoami")
    assert len(kontrol.calls_of("getToken")) == 1


async def test_failed_renewals_are_retried_until_the_kite_is_gone(make_kite, config_for, kontrol):
    from kitecore import GenericError

    math = await serving_kite(make_kite, config_for, kontrol)
    await math.register()
    caller = await make_kite("caller", config=config_for(kontrol, "alice"))
    kontrol.token_ttl = 60
    caller.kontrol_client.renew_before = 60
    caller.kontrol_client.retry_interval = 0.05
    kontrol.token_errors = [GenericError("internal"), GenericError("internal")]
    kontrol.token_errors.append(GenericError("no kites found"))
    [client] = await caller.get_kites(username="bob")
    async with client:
        await wait_until(lambda: len(kontrol.calls_of("getToken")) >= 3)
        await anyio.sleep(0.3)  # several retry intervals: no more attempts once the kite is gone
        assert len(kontrol.calls_of("getToken")) == 3
        assert await client.tell("whoami") == "alice"  # the old token still works
