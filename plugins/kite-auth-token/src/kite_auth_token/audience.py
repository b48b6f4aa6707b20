"""Token audiences (protocol.md §6.2, §6.3): which kites a token is good for.

An audience is a kite path prefix ``/<username>[/<environment>[/<name>]]`` or the root ``/``.
Kontrol derives it from the query the requester asked with; a kite accepts a token only if the
audience names its username exactly and, when given, its environment and name.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from .errors import TokenError

__all__ = [
    "ROOT_AUDIENCE",
    "KiteIdentity",
    "audience_for_query",
    "audience_matches",
    "check_audience",
]

logger = logging.getLogger(__name__)

#: The audience accepted by every kite (what an ID-only query produces).
ROOT_AUDIENCE = "/"


class KiteIdentity(Protocol):
    """The parts of a kite's identity an audience is checked against."""

    @property
    def username(self) -> str: ...

    @property
    def environment(self) -> str: ...

    @property
    def name(self) -> str: ...


def audience_for_query(username: str = "", environment: str = "", name: str = "") -> str:
    """Return the audience Kontrol puts in tokens for a query with these fields.

    ``/user/env/name`` if a name is given, else ``/user/env`` if an environment is given, else
    ``/user``. Other query fields (version, region, hostname, id) do not narrow the audience, so an
    ID-only query yields ``/``, the root audience every kite accepts: a quirk of Go's Kontrol that
    the token renewer relies on.
    """
    if name:
        return f"/{username}/{environment}/{name}"
    if environment:
        return f"/{username}/{environment}"
    return f"/{username}"


def check_audience(audience: str, username: str, environment: str, name: str) -> None:
    """Raise :class:`TokenError` (with Go's message) unless ``audience`` admits this kite.

    ``/`` admits every kite. Otherwise the audience's username must equal ``username`` exactly
    (an empty one matches only an empty username); its environment and name must match when
    non-empty and are wildcards when empty. Fields after the name are ignored.
    """
    if audience == ROOT_AUDIENCE:
        return
    if not audience:
        raise TokenError("invalid empty audience")
    if not audience.startswith("/"):
        raise TokenError(f"invalid audience: invalid kite string ({audience})")
    fields = [*audience[1:].split("/", 6), "", ""]
    aud_username, aud_environment, aud_name = fields[:3]
    if aud_username != username:
        raise TokenError(f"audience: username {_quote(aud_username)} not allowed ({audience})")
    if aud_environment and aud_environment != environment:
        raise TokenError(
            f"audience: environment {_quote(aud_environment)} not allowed ({audience})"
        )
    if aud_name and aud_name != name:
        raise TokenError(f"audience: kite {_quote(aud_name)} not allowed ({audience})")


def audience_matches(audience: str, username: str, environment: str, name: str) -> bool:
    """Tell whether ``audience`` admits the kite ``username/environment/name`` (see above)."""
    try:
        check_audience(audience, username, environment, name)
    except TokenError as err:
        logger.debug("audience rejected: %s", err)
        return False
    return True


def _quote(value: str) -> str:
    # Close to Go's %q for the plain identifiers that appear in kite paths.
    return json.dumps(value, ensure_ascii=False)
