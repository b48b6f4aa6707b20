"""Every protocol test runs with each JSON parser this environment has: the standard library
alone, and msgspec first when the ``kitecore[speed]`` extra is installed (the core-only
environment has just the first). What a message decodes to, and each error, must not depend
on it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from kitecore.protocol import dnode

JSON_PARSERS = ["stdlib"] + (["msgspec"] if importlib.util.find_spec("msgspec") else [])


# module scope: hypothesis refuses function-scoped fixtures around its tests
@pytest.fixture(params=JSON_PARSERS, scope="module", autouse=True)
def json_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """The parser :func:`dnode.decode` tries first, for every test of the module."""
    assert dnode.use_fast_json(request.param == "msgspec") == (request.param == "msgspec")
    try:
        yield request.param
    finally:
        dnode.use_fast_json(True)
