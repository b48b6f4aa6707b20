"""Kontrol's tunables (Go's package variables, protocol.md §9), all in seconds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KontrolSettings"]


@dataclass
class KontrolSettings:
    """Timing and token settings; the defaults are Go Kontrol's. Tests shrink them."""

    #: How long a registration lives after its last write (Go ``KeyTTL``).
    key_ttl: float = 90.0
    #: Interval Kontrol asks registered kites to ping at (Go ``HeartbeatInterval``).
    heartbeat_interval: float = 10.0
    #: Extra silence tolerated before a heartbeat counts as lost (Go ``HeartbeatDelay``).
    heartbeat_delay: float = 20.0
    #: Storage is refreshed at most this often per kite (Go ``UpdateInterval``).
    update_interval: float = 60.0
    #: How long ``kite.heartbeat`` on a registering kite may take to answer.
    heartbeat_call_timeout: float = 4.0
    #: How often Kontrol refreshes its own registration.
    self_register_interval: float = 30.0
    #: Token lifetime and clock-skew leeway (Go ``TokenTTL``, ``TokenLeeway``).
    token_ttl: float = 48 * 3600.0
    token_leeway: float = 5 * 60.0
    #: A watcher is dropped (after one ``watchError``) when its connection has more than this
    #: many messages waiting to be sent: the caller is not reading (kite_kontrol.watch).
    watch_backlog: int = 4096
    #: ... or more than this many bytes written for it and not yet read.
    watch_backlog_bytes: int = 4 * 1024 * 1024
    #: Delete a kite's registration as soon as the connection it registered over closes
    #: (watchers see it leave at once); off, it stays until its TTL runs out, as in Go.
    deregister_on_disconnect: bool = True
    #: Omit ``nbf`` from tokens (Go ``TokenNoNBF``).
    token_no_nbf: bool = False
    #: How long a trusted (or untrusted) Kontrol key / verified kite.key is remembered.
    verify_ttl: float = 300.0
    #: How long an unknown Kontrol key is remembered as untrusted.
    negative_verify_ttl: float = 10.0

    # --- limits (kite_kontrol.limits, docs/limits.md) ---
    #: Longest identity or query field accepted, in UTF-8 bytes.
    max_identity_field_bytes: int = 256
    #: Longest registered URL accepted, in UTF-8 bytes.
    max_url_bytes: int = 2048
    #: Most kites one username may have registered (per Kontrol instance).
    max_kites_per_user: int = 10_000
    #: Failed registerMachine attempts (per peer host and per username) that cause a lockout...
    machine_max_failures: int = 5
    #: ...within this many seconds...
    machine_failure_window: float = 60.0
    #: ...and how long the lockout lasts.
    machine_lockout: float = 300.0

    def __post_init__(self) -> None:
        for name in (
            "key_ttl",
            "heartbeat_interval",
            "update_interval",
            "heartbeat_call_timeout",
            "self_register_interval",
            "token_ttl",
            "max_identity_field_bytes",
            "max_url_bytes",
            "max_kites_per_user",
            "machine_max_failures",
            "machine_failure_window",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"KontrolSettings.{name} must be positive")
        if self.machine_lockout < 0:
            raise ValueError("KontrolSettings.machine_lockout must not be negative")
        if self.update_interval >= self.key_ttl:
            raise ValueError("update_interval must be shorter than key_ttl, or kites expire")
