"""Unit tests of the core's small pieces: config, backoff, throttle, argument accessors."""

from __future__ import annotations

import pytest

from kitecore import ArgumentError, Config
from kitecore.backoff import Backoff
from kitecore.config import parse_duration
from kitecore.request import Arguments
from kitecore.throttle import TokenBucket


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15", 15.0), ("2.5", 2.5), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "1m30", "s"])
def test_parse_duration_rejects_garbage(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_config_from_environment():
    config = Config.from_env(
        {
            "KITE_USERNAME": "alice",
            "KITE_ENVIRONMENT": "production",
            "KITE_REGION": "eu",
            "KITE_IP": "127.0.0.1",
            "KITE_PORT": "6000",
            "KITE_KONTROL_URL": "http://k:4000/kite",
            "KITE_TRANSPORT": "websocket",
            "KITE_TIMEOUT": "4s",
            "KITE_HANDSHAKE_TIMEOUT": "1m",
        }
    )
    assert (config.username, config.environment, config.region) == ("alice", "production", "eu")
    assert (config.ip, config.port) == ("127.0.0.1", 6000)
    assert config.kontrol_url == "http://k:4000/kite"
    assert config.transport == "websocket"
    assert config.timeout == 4.0
    assert config.handshake_timeout == 60.0


def test_config_defaults_and_bad_values(tmp_path):
    config = Config.from_env({"KITE_HOME": str(tmp_path)})  # no kite.key there
    assert (config.username, config.environment, config.region) == ("unknown",) * 3
    assert config.timeout == 15.0 and config.port == 0 and config.transport == "auto"
    with pytest.raises(ValueError, match="KITE_PORT='sixty'"):
        Config.from_env({"KITE_PORT": "sixty"})
    copy = config.copy()
    assert copy == config and copy is not config


def test_backoff_grows_with_jitter_and_resets():
    backoff = Backoff(initial=0.5, multiplier=1.5, randomization=0.5, maximum=60)
    waits = [backoff.next() for _ in range(30)]
    interval = 0.5
    for wait in waits:
        assert interval * 0.5 <= wait <= interval * 1.5
        interval = min(60, interval * 1.5)
    assert max(waits) <= 90
    backoff.reset()
    assert backoff.next() <= 0.75
    assert backoff.upper_bound(3) == pytest.approx(0.75 + 1.125 + 1.6875)


def test_token_bucket():
    now = [0.0]
    bucket = TokenBucket(0.1, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1
    assert bucket.take() and not bucket.take()
    now[0] += 10
    assert bucket.available == 3


def test_argument_accessors():
    args = Arguments([4, "x", {"a": 1}, [1], True, 2.0])
    assert args.as_list() == [4, "x", {"a": 1}, [1], True, 2.0]
    assert args.as_list() is not args.as_list()  # a copy: the caller may change it
    assert not hasattr(args, "list")  # renamed: it shadowed the builtin in the class body
    assert args.number(0) == 4 and args.integer(5) == 2 and args.string(1) == "x"
    assert args.mapping(2) == {"a": 1} and args.array(3) == [1] and args.boolean(4) is True
    with pytest.raises(ArgumentError, match="argument 1 must be a number, not a string"):
        args.number(1)
    with pytest.raises(ArgumentError, match="argument 9 is missing"):
        args[9]
    with pytest.raises(ArgumentError, match="must be a function"):
        args.function(0)
    with pytest.raises(ArgumentError, match="expected 1 argument, got 6"):
        args.one()
    assert Arguments([7]).one(int) == 7
    with pytest.raises(ArgumentError, match="must be an integer"):
        Arguments([7.5]).one(int)
    with pytest.raises(ArgumentError, match="must be a number, not a boolean"):
        Arguments([True]).one(float)


def test_request_served_is_the_request_the_constructor_makes():
    """Request.served (the serving path's shortcut) fills every slot as __init__ does."""
    from kitecore.protocol.envelope import Authentication
    from kitecore.protocol.identity import KiteIdentity
    from kitecore.request import Request

    caller = KiteIdentity("alice", "prod", "calc", "1.0.0", "eu", "host", "id-1")
    auth = Authentication("token", "secret")
    client, kite = object(), object()
    for who in (caller, None):
        made = Request(
            method="square",
            args=Arguments([7]),
            caller=who,
            auth=auth,
            client=client,  # type: ignore[arg-type]
            local_kite=kite,  # type: ignore[arg-type]
        )
        served = Request.served("square", [7], who, auth, client, kite)  # type: ignore[arg-type]
        for name in Request.__slots__:
            if name == "args":
                assert served.args.as_list() == made.args.as_list() == [7]
            else:
                assert getattr(served, name) == getattr(made, name), name
        assert served.username == ("alice" if who else "")
        assert served.context == {} and served.context is not made.context
