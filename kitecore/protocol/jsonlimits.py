"""JSON from peers with a bound on nesting depth: the one helper every parser of peer input uses.

CPython's ``json`` recurses once per nesting level, so a text such as ``[[[[...]]]]`` 100,000
levels deep raises :class:`RecursionError` (not :class:`ValueError`) from deep inside the
parser; a handler that only expects ``ValueError`` then crashes with a traceback. :func:`loads`
refuses such texts up front with :class:`JSONDepthError`, a ``ValueError``, so callers that
already turn ``ValueError`` into "broken JSON" keep working. The check costs two ``str.count``
calls unless the text holds more opening brackets than the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "JSONDepthError", "check_json_depth", "loads"]

#: Deepest nesting of arrays and objects accepted from a peer (documented in docs/limits.md).
#: Well below CPython's default recursion limit (1000), so the parser never reaches it.
MAX_JSON_DEPTH = 256

# A JSON string (skipped as one token, so brackets inside strings do not count) or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class JSONDepthError(ValueError):
    """A JSON text nests arrays/objects deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested more than {max_depth} levels deep")
        self.max_depth = max_depth


def check_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JSONDepthError` if ``text`` nests arrays/objects deeper than ``max_depth``.

    Only looks at brackets outside strings; says nothing about whether ``text`` is valid JSON.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > max_depth:
                raise JSONDepthError(max_depth)
        elif token == "]" or token == "}":
            depth -= 1


def loads(data: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON received from a peer.

    Raises ``ValueError`` for every bad input: :class:`JSONDepthError` (too deep),
    :class:`json.JSONDecodeError` (not JSON), :class:`UnicodeDecodeError` (bytes that are not
    UTF-8) or CPython's ``ValueError`` for integers of more than 4,300 digits.
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    check_json_depth(text, max_depth)
    try:
        return json.loads(text)
    except RecursionError:  # the caller's own stack was already deep
        raise JSONDepthError(max_depth) from None
