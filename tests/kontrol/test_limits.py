"""Kontrol's limits without a network: lockout timing, quota recount, sizes, flags and env."""

from __future__ import annotations

import pytest
from kite_kontrol.__main__ import build_parser
from kite_kontrol.limits import (
    FailureLimiter,
    KiteQuota,
    check_identity_sizes,
    check_url_size,
    limit_settings,
    peer_host,
)
from kite_kontrol.settings import KontrolSettings

from kitecore.protocol import ArgumentError, KiteIdentity, RequestLimitError
from kitecore.storage import RegisterValue
from kitecore.storage.memory import MemoryStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_lock_out_after_the_limit_within_the_window():
    clock = Clock()
    limiter = FailureLimiter(3, window=60, lockout=300, clock=clock)
    limiter.failed("k")
    clock.now += 61  # outside the window: the count starts again
    limiter.failed("k")
    limiter.failed("k")
    assert limiter.locked_for("k") == 0
    limiter.failed("k")
    assert limiter.locked_for("k") == 300
    assert limiter.locked_for("other") == 0
    clock.now += 299
    assert limiter.locked_for("k") == pytest.approx(1)
    clock.now += 1
    assert limiter.locked_for("k") == 0


def test_success_forgets_failures_and_the_table_is_bounded():
    limiter = FailureLimiter(2, window=60, lockout=300, max_keys=10, clock=Clock())
    limiter.failed("k")
    limiter.succeeded("k")
    limiter.failed("k")
    assert limiter.locked_for("k") == 0
    for i in range(1000):
        limiter.failed(f"user{i}")
    assert len(limiter._keys) == 10


def test_peer_host():
    assert peer_host("127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("[::1]:5000") == "::1"
    assert peer_host("loopback") == "loopback"
    assert peer_host("") == ""


def _kite(username: str, kite_id: str) -> KiteIdentity:
    return KiteIdentity(username, "env", "name", "1.0.0", "region", "host", kite_id)


@pytest.mark.anyio
async def test_quota_recounts_from_storage_when_full():
    clock = Clock()
    storage = MemoryStorage()
    quota = KiteQuota(2, recount_interval=1.0, clock=clock)
    for kite_id in ("a", "b"):
        await quota.admit(_kite("alice", kite_id), storage)
        await storage.upsert(_kite("alice", kite_id), RegisterValue("http://h:1/kite", "k"), ttl=60)
    await quota.admit(_kite("alice", "a"), storage)  # already registered: fine
    await quota.admit(_kite("bob", "c"), storage)  # another user
    with pytest.raises(RequestLimitError, match="already has 2 registered kites"):
        await quota.admit(_kite("alice", "c"), storage)
    await storage.delete(_kite("alice", "b"))  # one went away
    with pytest.raises(RequestLimitError):  # recounted at most once a second
        await quota.admit(_kite("alice", "c"), storage)
    clock.now += 1
    await quota.admit(_kite("alice", "c"), storage)


def test_sizes_count_utf8_bytes():
    settings = KontrolSettings(max_identity_field_bytes=8, max_url_bytes=20)
    check_identity_sizes(_kite("é" * 4, "id"), settings)  # 8 bytes
    with pytest.raises(ArgumentError, match='"username" is longer than 8 bytes'):
        check_identity_sizes(_kite("é" * 5, "id"), settings)
    check_url_size("http://h:1/kite", settings)
    with pytest.raises(ArgumentError, match="url is longer than 20 bytes"):
        check_url_size("http://h:1/kite/" + "é" * 3, settings)


def test_flags_then_environment_then_defaults():
    args = build_parser().parse_args(["--max-kites-per-user", "7", "--machine-lockout", "1.5"])
    values = limit_settings(
        args, {"KONTROL_MAX_URL_BYTES": "100", "KONTROL_MAX_KITES_PER_USER": "9"}
    )
    assert values == {"max_kites_per_user": 7, "machine_lockout": 1.5, "max_url_bytes": 100}
    settings = KontrolSettings(**values)
    assert settings.max_identity_field_bytes == 256 and settings.machine_max_failures == 5
    with pytest.raises(ValueError, match="KONTROL_MACHINE_MAX_FAILURES"):
        limit_settings(build_parser().parse_args([]), {"KONTROL_MACHINE_MAX_FAILURES": "x"})
    with pytest.raises(ValueError, match="max_kites_per_user must be positive"):
        KontrolSettings(max_kites_per_user=0)
