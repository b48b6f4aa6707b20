"""A fake Kontrol for kite-side tests: serves register, getKites, getToken and getKey over the
real wire protocol (protocol.md §7.1), with knobs to misbehave."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kite_auth_token import KeyPair, audience_for_query, mint_token

from kitecore import AuthenticationError, GenericError, Kite, KiteIdentity, Query, Request


@dataclass
class Registered:
    kite: KiteIdentity
    url: str


@dataclass
class FakeKontrol:
    """Kontrol's behaviour, scripted. ``kite`` is set once the fake is serving."""

    pair: KeyPair
    username: str = "kontrol"
    kite: Kite | None = None
    #: every successful registration, in order
    registrations: list[Registered] = field(default_factory=list)
    #: ``(method, withArgs[0])`` of every call received
    calls: list[tuple[str, Any]] = field(default_factory=list)
    #: registrations to refuse before accepting
    refuse_registrations: int = 0
    #: extra keys for the register answer (``kiteKey``/``publicKey`` on key rotation)
    register_extra: dict[str, str] = field(default_factory=dict)
    #: errors getToken raises, one per call, before it answers normally
    token_errors: list[Exception] = field(default_factory=list)
    #: key pair that signs tokens (None: Kontrol's own)
    signing_pair: KeyPair | None = None
    #: token lifetime in seconds
    token_ttl: float = 48 * 3600
    heartbeat_pings: int = 0

    def methods(self) -> dict[str, Any]:
        return {
            "register": self.register,
            "getKites": self.get_kites,
            "getToken": self.get_token,
            "getKey": self.get_key,
        }

    def calls_of(self, method: str) -> list[Any]:
        return [args for name, args in self.calls if name == method]

    def token(self, subject: str, audience: str) -> str:
        pair = self.signing_pair or self.pair
        return mint_token(
            issuer=self.username,
            subject=subject,
            audience=audience,
            private_key=pair.private,
            ttl=self.token_ttl,
            leeway=0,
        )

    async def register(self, r: Request) -> dict[str, Any]:
        args = r.args.mapping(0)
        self.calls.append(("register", args))
        if r.auth is None or r.auth.type != "kiteKey":
            raise AuthenticationError(f"Unexpected authentication type: {r.auth and r.auth.type}")
        if self.refuse_registrations > 0:
            self.refuse_registrations -= 1
            raise GenericError("internal error - register")
        remote = r.client.remote_kite
        assert remote is not None
        identity = KiteIdentity(**{**_fields(remote), "username": r.username})

        def ping() -> None:
            self.heartbeat_pings += 1

        await r.client.tell("kite.heartbeat", 10, ping)  # on the kite's own (trusted) connection
        self.registrations.append(Registered(identity, args["url"]))
        return {"url": args["url"], "heartbeatInterval": 0, **self.register_extra}

    def _matching(self, query: Query) -> list[Registered]:
        return [entry for entry in self.registrations if query.matches(entry.kite)]

    async def get_kites(self, r: Request) -> dict[str, Any]:
        args = r.args.mapping(0)
        self.calls.append(("getKites", args))
        query = Query.from_wire(args["query"])
        audience = audience_for_query(query.username, query.environment, query.name)
        latest: dict[str, Registered] = {}
        for entry in self._matching(query):
            latest[entry.kite.id] = entry
        return {
            "kites": [
                {
                    "kite": entry.kite.to_wire(),
                    "url": entry.url,
                    "keyId": self.pair.id,
                    "token": self.token(r.username, audience),
                }
                for entry in latest.values()
            ]
        }

    async def get_token(self, r: Request) -> str:
        args = dict(r.args.mapping(0))
        self.calls.append(("getToken", dict(args)))
        args.pop("force", None)
        if self.token_errors:
            raise self.token_errors.pop(0)
        query = Query.from_wire(args)
        matches = {entry.kite.id for entry in self._matching(query)}
        if not matches:
            raise GenericError("no kites found")
        if len(matches) > 1:
            raise GenericError("query matches more than one kite")
        return self.token(
            r.username, audience_for_query(query.username, query.environment, query.name)
        )

    async def get_key(self, r: Request) -> str:
        self.calls.append(("getKey", None))
        return self.pair.public


def _fields(identity: KiteIdentity) -> dict[str, str]:
    return {
        name: getattr(identity, name)
        for name in ("username", "environment", "name", "version", "region", "hostname", "id")
    }


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until it is true; fail the test after ``timeout`` seconds."""
    import anyio

    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - state changes in other tasks, no event to await
            await anyio.sleep(0.01)
