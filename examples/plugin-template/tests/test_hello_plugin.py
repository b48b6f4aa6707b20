"""The plugin's hooks, tested on real kites with kitecore's test kit (:mod:`kitecore.testing`)."""

from __future__ import annotations

import kite_hello_plugin
import pytest

from kitecore import Kite
from kitecore.config import Config
from kitecore.plugins import PluginRegistry, load_plugins
from kitecore.testing import MakeKite
from kitecore.transport import DialOptions

pytestmark = pytest.mark.anyio


@pytest.fixture
def kite_plugins() -> PluginRegistry:
    """The core's websocket transport and this plugin, whether installed or not.

    ``kitecore.testing``'s fixtures use this registry, so no other installed plugin leaks in.
    """
    return load_plugins(names=("websocket",), extra_plugins=[kite_hello_plugin])


async def test_greet_answers_the_caller_by_name(
    make_kite: MakeKite, kite_config: Config, kite_plugins: PluginRegistry
) -> None:
    server = await make_kite("server")
    config = kite_config.copy()
    config.username = "alice"
    caller = Kite("caller", "1.0.0", config=config, plugins=kite_plugins)
    async with caller.new_client(server.url) as client:
        assert await client.tell("hello.greet") == "hello, alice"


async def test_hello_transport_echoes(kite_plugins: PluginRegistry) -> None:
    transport = kite_plugins.transport("hello")
    assert transport.accepts("hello://anywhere")
    assert not transport.accepts("http://127.0.0.1/kite")
    stream = await transport.connect("hello://anywhere", DialOptions())
    async with stream:
        await stream.send("[1]")
        assert await stream.receive() == "[1]"
