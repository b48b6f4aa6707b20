"""Getting a kite.key: Kontrol's ``registerMachine`` from the caller's side (``kite register``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kitecore.protocol.errors import InvalidResponseError

if TYPE_CHECKING:
    from kitecore.kite import Kite

__all__ = [
    "SECRET_AUTH_TYPE",
    "SECRET_ENV",
    "SECRET_ENV_ALIASES",
    "register_machine",
    "registration_secret_from_env",
]

#: The ``authType`` sent with a registration secret.
SECRET_AUTH_TYPE = "secret"

#: The registration secret's environment variable, read by ``kite register`` and by Kontrol.
SECRET_ENV = "KITE_REGISTRATION_SECRET"
#: Other names accepted for it (Kontrol's earlier name); :data:`SECRET_ENV` wins when both are set.
SECRET_ENV_ALIASES = ("KONTROL_REGISTRATION_SECRET",)


def registration_secret_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The registration secret from :data:`SECRET_ENV` (or an alias); ``None`` when unset/empty."""
    env = os.environ if environ is None else environ
    for name in (SECRET_ENV, *SECRET_ENV_ALIASES):
        if env.get(name):
            return env[name]
    return None


async def register_machine(
    kite: Kite,
    kontrol_url: str,
    *,
    username: str,
    secret: str | None = None,
    timeout: float | None = None,
) -> str:
    """Ask the Kontrol at ``kontrol_url`` for a kite.key for ``username``; returns the JWT.

    ``secret`` is the registration secret the Kontrol was started with (leave it out for a
    Kontrol in open-registration mode). Kontrol's refusals arrive as :class:`KiteError`.
    """
    args: dict[str, Any] = {"authType": SECRET_AUTH_TYPE if secret else "open"}
    args["username"] = username
    if secret:
        args["secret"] = secret
    wait = kite.config.timeout if timeout is None else timeout
    async with kite.new_client(kontrol_url) as client:
        key = await client.tell("registerMachine", args, timeout=wait)
    if not isinstance(key, str) or key.count(".") != 2:
        raise InvalidResponseError(f"registerMachine answered {key!r}, not a kite.key")
    return key
