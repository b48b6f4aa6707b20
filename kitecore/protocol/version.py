"""Versions and version constraints with hashicorp/go-version semantics (protocol.md §7.2).

Kontrol queries may carry either an exact version (``"1.0.0"``) or a constraint
(``">= 1.0, < 1.4"``, ``"~> 1.1"``); a string is a constraint when it does not parse as a
version. The rules follow go-version:

* a version is ``[v]N(.N)*`` with an optional prerelease (``-beta1``, or ``beta1`` glued on) and
  optional metadata (``+build``); segments compare numerically, missing ones count as 0, metadata
  is ignored, and a prerelease sorts before its release;
* a constraint is a comma-separated list of ``<op> <version>`` (ops ``= != > < >= <= ~>``, none
  meaning ``=``); every part must hold;
* ``~> 1.2`` means ``>= 1.2, < 2.0`` and ``~> 1.2.3`` means ``>= 1.2.3, < 1.3.0``;
* a version with a prerelease only satisfies an ordering constraint whose version has a
  prerelease on the same segments (so ``1.5.0-beta`` does not satisfy ``>= 1.0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import zip_longest

from .errors import ArgumentError

__all__ = ["Constraint", "Version", "is_constraint", "version_matches"]

_VERSION_RAW = (
    r"v?([0-9]+(?:\.[0-9]+)*?)"
    r"(?:-([0-9]+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*)"
    r"|(?:-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(?:\.[0-9A-Za-z\-~]+)*)))?"
    r"(?:\+([0-9A-Za-z\-~]+(?:\.[0-9A-Za-z\-~]+)*))?"
)
_VERSION_RE = re.compile(rf"{_VERSION_RAW}\Z", re.ASCII)
_CONSTRAINT_RE = re.compile(rf"\s*(<=|>=|!=|~>|<|>|=|)\s*({_VERSION_RAW})\s*\Z", re.ASCII)


@dataclass(frozen=True, slots=True, eq=False)
class Version:
    """A parsed version. ``segments`` are the numbers as written (``"1.2"`` gives ``(1, 2)``).

    Equality, hashing and ordering ignore metadata and trailing zero segments, so
    ``Version.parse("1.0") == Version.parse("1.0.0")``.
    """

    segments: tuple[int, ...]
    prerelease: str = ""
    metadata: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text``; raises :class:`ArgumentError` ("Malformed version: ...") if invalid."""
        return _parse_version(text)

    def __str__(self) -> str:
        text = ".".join(map(str, self.segments))
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text

    @property
    def _normal(self) -> tuple[int, ...]:
        segments = self.segments
        end = len(segments)
        while end > 1 and segments[end - 1] == 0:
            end -= 1
        return segments[:end]

    def compare(self, other: Version) -> int:
        """Return -1, 0 or 1 as this version sorts before, equal to or after ``other``."""
        for mine, theirs in zip_longest(self.segments, other.segments, fillvalue=0):
            if mine != theirs:
                return -1 if mine < theirs else 1
        if self.prerelease == other.prerelease:
            return 0
        if not self.prerelease:
            return 1
        if not other.prerelease:
            return -1
        return _compare_prereleases(self.prerelease, other.prerelease)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) == 0

    def __hash__(self) -> int:
        return hash((self._normal, self.prerelease))

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) < 0

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) <= 0

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) > 0

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) >= 0


def _compare_part(mine: str, theirs: str) -> int:
    # go-version's comparePart: numeric parts sort before alphanumeric ones; a missing part
    # sorts before a numeric part and after an alphanumeric one.
    if mine == theirs:
        return 0
    mine_numeric = mine.isdigit()
    theirs_numeric = theirs.isdigit()
    if not mine:
        return -1 if theirs_numeric else 1
    if not theirs:
        return 1 if mine_numeric else -1
    if mine_numeric and theirs_numeric:
        # compared as numbers without int(), which refuses more than 4,300 digits
        mine_value, theirs_value = mine.lstrip("0"), theirs.lstrip("0")
        if mine_value != theirs_value:
            if len(mine_value) != len(theirs_value):
                return -1 if len(mine_value) < len(theirs_value) else 1
            return -1 if mine_value < theirs_value else 1
        return -1 if mine < theirs else 1  # "01" vs "1": distinct, as in go-version
    if mine_numeric:
        return -1
    if theirs_numeric:
        return 1
    return -1 if mine < theirs else 1


def _compare_prereleases(mine: str, theirs: str) -> int:
    for a, b in zip_longest(mine.split("."), theirs.split("."), fillvalue=""):
        result = _compare_part(a, b)
        if result:
            return result
    return 0


#: Largest version segment, as in go-version (a signed 64-bit integer).
_MAX_SEGMENT = 2**63 - 1
#: Longest version or constraint text parsed: the patterns backtrack on long runs of digits.
MAX_LENGTH = 1024


def _shown(text: object) -> str:
    """``text`` for an error message, cut short when long."""
    shown = str(text) if isinstance(text, str) else repr(text)
    return shown if len(shown) <= 64 else shown[:61] + "..."


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_LENGTH:
        raise ArgumentError(
            f"Malformed {what}: {_shown(text)} is longer than {MAX_LENGTH} characters"
        )


@lru_cache(maxsize=1024)
def _parse_version(text: str) -> Version:
    if isinstance(text, str):
        _check_length(text, "version")
    match = _VERSION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ArgumentError(f"Malformed version: {_shown(text)}")
    return _from_match(
        text, match.group(1), match.group(2) or match.group(3), match.group(4), "version"
    )


def _from_match(
    text: str, segments: str, prerelease: str | None, metadata: str | None, what: str
) -> Version:
    numbers = []
    for segment in segments.split("."):
        # length first: int() refuses more than 4,300 digits with a ValueError
        if len(segment.lstrip("0")) > 19 or int(segment) > _MAX_SEGMENT:
            raise ArgumentError(
                f"Malformed {what}: {_shown(text)}: segment {_shown(segment)} is larger "
                f"than {_MAX_SEGMENT}"
            )
        numbers.append(int(segment))
    return Version(tuple(numbers), prerelease or "", metadata or "")


def _padded(version: Version) -> tuple[int, ...]:
    segments = version.segments
    return segments + (0,) * (3 - len(segments)) if len(segments) < 3 else segments


def _prerelease_ok(version: Version, check: Version) -> bool:
    # go-version's prereleaseCheck.
    if version.prerelease and check.prerelease:
        return _padded(version) == _padded(check)
    return not version.prerelease


def _pessimistic(version: Version, check: Version) -> bool:
    if not _prerelease_ok(version, check) or (check.prerelease and not version.prerelease):
        return False
    if version.compare(check) < 0:
        return False
    have, want = _padded(version), _padded(check)
    if len(want) > len(have):
        return False
    # All segments but the last one written in the constraint must be equal.
    return have[: len(check.segments) - 1] == want[: len(check.segments) - 1]


def _check(op: str, version: Version, check: Version) -> bool:
    if op in ("", "="):
        return version.compare(check) == 0
    if op == "!=":
        return version.compare(check) != 0
    if op == "~>":
        return _pessimistic(version, check)
    if not _prerelease_ok(version, check):
        return False
    order = version.compare(check)
    if op == ">":
        return order > 0
    if op == "<":
        return order < 0
    if op == ">=":
        return order >= 0
    return order <= 0  # "<="


@dataclass(frozen=True, slots=True)
class Constraint:
    """A parsed constraint: ``terms`` are (operator, version) pairs that must all hold."""

    terms: tuple[tuple[str, Version], ...]
    original: str = ""

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``text``; raises :class:`ArgumentError` ("Malformed constraint: ...")."""
        return _parse_constraint(text)

    def check(self, version: Version | str) -> bool:
        """Return True when ``version`` satisfies every term."""
        if isinstance(version, str):
            version = _parse_version(version)
        return all(_check(op, version, check) for op, check in self.terms)

    def __str__(self) -> str:
        return self.original or ", ".join(f"{op} {v}".lstrip() for op, v in self.terms)


@lru_cache(maxsize=1024)
def _parse_constraint(text: str) -> Constraint:
    if not isinstance(text, str):
        raise ArgumentError(f"Malformed constraint: {_shown(text)}")
    _check_length(text, "constraint")
    terms = []
    for single in text.split(","):
        match = _CONSTRAINT_RE.match(single)
        if match is None:
            raise ArgumentError(f"Malformed constraint: {_shown(single.strip() or text)}")
        version = _from_match(text, match.group(3), match[4] or match[5], match[6], "constraint")
        terms.append((match.group(1), version))
    return Constraint(tuple(terms), text)


def _try_version(text: str) -> Version | None:
    try:
        return _parse_version(text)
    except ArgumentError:
        return None


def is_constraint(text: str) -> bool:
    """True when ``text`` is not a plain version but parses as a constraint."""
    if _try_version(text) is not None:
        return False
    try:
        _parse_constraint(text)
    except ArgumentError:
        return False
    return True


def version_matches(version: str, spec: str) -> bool:
    """Does ``version`` match ``spec``, an exact version or a constraint?

    Exact versions compare as versions (``"1.0"`` matches ``"1.0.0"``). An unparsable
    ``version`` never matches; an unparsable ``spec`` raises :class:`ArgumentError`.
    """
    parsed = _try_version(version)
    wanted = _try_version(spec)
    if wanted is not None:
        return parsed is not None and parsed == wanted
    constraint = _parse_constraint(spec)
    return parsed is not None and constraint.check(parsed)
