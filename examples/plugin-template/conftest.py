"""Test setup: the plugin's tests run on asyncio and trio, like kitecore's own.

kitecore's fixtures (``kite_config``, ``make_kite``, ...) come from its pytest plugin,
:mod:`kitecore.testing`, loaded automatically once kitecore is installed.
"""

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param
