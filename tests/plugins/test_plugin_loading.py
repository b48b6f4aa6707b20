"""Loading plugins from entry points and collecting what they register."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kitecore import plugins
from kitecore.hookspecs import hookimpl
from kitecore.plugins import PluginError, load_plugins

#: The ``make_dist`` fixture (see conftest.py).
MakeDist = Callable[..., Path]

#: The plugin template, examples/plugin-template (tests/plugins/test_plugin_install installs it).
TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "plugin-template"

PLUGIN_SOURCE = """
from kitecore.hookspecs import hookimpl

@hookimpl
def kite_register_pickers(register):
    register("{name}", lambda **options: "{name}-picker")
"""

BROKEN_SOURCE = """
import kite_dependency_that_is_not_installed
"""


def picker_plugin(name: str) -> str:
    return PLUGIN_SOURCE.format(name=name)


@pytest.fixture
def two_plugins(make_dist: MakeDist) -> None:
    make_dist(
        "kite-alpha-beta",
        "1.2.3",
        {"alpha": "kite_test_alpha", "beta": "kite_test_beta"},
        {"kite_test_alpha": picker_plugin("alpha"), "kite_test_beta": picker_plugin("beta")},
    )


class FakeTransport:
    """Just enough to be a Transport."""

    priority = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def accepts(self, url: str) -> bool:
        return False

    async def connect(self, url: str, options: Any) -> Any:
        raise OSError("not dialable")

    def mount(self, server: Any, prefix: str, on_accept: Any) -> None:
        pass


class TransportX:
    @hookimpl
    def kite_register_transports(self, register: Any) -> None:
        register(FakeTransport("x"))


class AlsoTransportX:
    @hookimpl
    def kite_register_transports(self, register: Any) -> None:
        register(FakeTransport("x"))


class Everything:
    """Registers one of each kind of thing."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    @hookimpl
    def kite_register_transports(self, register: Any) -> None:
        register(FakeTransport("fake"))

    @hookimpl
    def kite_register_authenticators(self, register: Any) -> None:
        register("token", lambda kite: "token-authenticator")

    @hookimpl
    def kite_register_storages(self, register: Any) -> None:
        def open_memory(url: str) -> str:
            self.opened.append(url)
            return "memory-storage"

        register("memory", open_memory)

    @hookimpl
    def kite_register_pickers(self, register: Any) -> None:
        register("random", lambda **options: "random-picker")
        register("round_robin", lambda **options: "rr-picker")

    @hookimpl
    def kite_register_commands(self, commands: plugins.CommandRegistry) -> None:
        commands.register("hello", "say hello", lambda parser: None, lambda args: 0)


def test_names_limit_which_entry_points_load(two_plugins: None) -> None:
    registry = load_plugins(names=["alpha"])

    assert [info.name for info in registry.plugins] == ["alpha"]
    assert list(registry.pickers) == ["alpha"]
    assert "kite_test_beta" not in sys.modules


def test_env_var_limits_which_entry_points_load(
    two_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITE_PLUGINS", " beta , ")
    assert list(load_plugins().pickers) == ["beta"]

    monkeypatch.setenv("KITE_PLUGINS", "")
    assert load_plugins().plugins == []


def test_all_installed_plugins_load_by_default(two_plugins: None) -> None:
    registry = load_plugins()

    assert {"alpha", "beta"} <= {info.name for info in registry.plugins}
    assert registry.picker("alpha")() == "alpha-picker"
    assert registry.picker("beta")() == "beta-picker"


def test_plugin_that_fails_to_import_is_logged_and_skipped(
    make_dist: MakeDist, caplog: pytest.LogCaptureFixture
) -> None:
    make_dist(
        "kite-mixed",
        "1.0",
        {"good": "kite_test_good", "broken": "kite_test_broken"},
        {"kite_test_good": picker_plugin("good"), "kite_test_broken": BROKEN_SOURCE},
    )
    with caplog.at_level(logging.WARNING, logger="kitecore.plugins"):
        registry = load_plugins(names=["good", "broken"])

    assert [info.name for info in registry.plugins] == ["good"]
    [record] = [r for r in caplog.records if r.name == "kitecore.plugins"]
    assert "'broken'" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ImportError)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_strict_mode_makes_an_import_failure_fatal(
    make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    make_dist(
        "kite-broken", "1.0", {"broken": "kite_test_broken"}, {"kite_test_broken": BROKEN_SOURCE}
    )
    if how == "env":
        monkeypatch.setenv("KITE_PLUGINS_STRICT", "1")
    strict = True if how == "argument" else None

    with pytest.raises(PluginError, match=r"plugin 'broken' \(kite_test_broken\) failed to import"):
        load_plugins(names=["broken"], strict=strict)


def test_asking_for_a_plugin_that_is_not_installed(
    two_plugins: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kitecore.plugins"):
        registry = load_plugins(names=["alpha", "nope"])
    assert [info.name for info in registry.plugins] == ["alpha"]
    assert "not installed: nope" in caplog.text

    with pytest.raises(PluginError, match=r"not installed: nope; installed: .*alpha, beta"):
        load_plugins(names=["alpha", "nope"], strict=True)


def test_two_distributions_with_the_same_entry_point_name(make_dist: MakeDist) -> None:
    make_dist("kite-one", "1.0", {"same": "kite_test_one"}, {"kite_test_one": picker_plugin("a")})
    make_dist("kite-two", "1.0", {"same": "kite_test_two"}, {"kite_test_two": picker_plugin("b")})

    with pytest.raises(PluginError, match="two plugins are called 'same'"):
        load_plugins(names=["same"])


def test_a_name_registered_twice_names_both_plugins() -> None:
    with pytest.raises(PluginError) as caught:
        load_plugins(names=(), extra_plugins=[TransportX(), AlsoTransportX()])

    # pluggy calls the most recently registered plugin first.
    assert str(caught.value) == (
        "transport 'x' is registered by both plugin 'AlsoTransportX' and plugin 'TransportX'"
    )


@pytest.mark.parametrize(
    "hook", ["kite_register_authenticators", "kite_register_storages", "kite_register_pickers"]
)
def test_factory_names_clash_too(hook: str) -> None:
    def register_same(self: object, register: Any) -> None:
        register("same", lambda *args: None)

    first = type("First", (), {hook: hookimpl(register_same)})()
    second = type("Second", (), {hook: hookimpl(register_same)})()

    kind = hook.removeprefix("kite_register_").removesuffix("s")
    with pytest.raises(PluginError, match=f"^{kind} 'same' is registered by both plugin"):
        load_plugins(names=(), extra_plugins=[first, second])


def test_misspelled_hook_is_caught() -> None:
    class Typo:
        @hookimpl
        def kite_register_transport(self, register: Any) -> None:
            pass

    with pytest.raises(PluginError) as caught:
        load_plugins(names=(), extra_plugins=[Typo()])

    message = str(caught.value)
    assert message.startswith("plugin 'Typo' implements unknown hook 'kite_register_transport'")
    assert "did you mean 'kite_register_transports'?" in message


def test_hook_with_wrong_arguments_is_caught() -> None:
    class WrongArgs:
        @hookimpl
        def kite_register_pickers(self, add: Any) -> None:
            pass

    with pytest.raises(PluginError, match="plugin 'WrongArgs' does not fit the kite hook specs"):
        load_plugins(names=(), extra_plugins=[WrongArgs()])


def test_registering_something_that_is_not_a_transport() -> None:
    class NotATransport:
        @hookimpl
        def kite_register_transports(self, register: Any) -> None:
            register(object())

    with pytest.raises(PluginError, match=r"plugin 'NotATransport' registered transport .*not a"):
        load_plugins(names=(), extra_plugins=[NotATransport()])


def test_registering_a_factory_that_is_not_callable() -> None:
    class NotCallable:
        @hookimpl
        def kite_register_storages(self, register: Any) -> None:
            register("etcd", "etcd3")

    with pytest.raises(PluginError, match="registered storage 'etcd' as 'etcd3', which is not"):
        load_plugins(names=(), extra_plugins=[NotCallable()])


def test_a_hook_that_raises_names_the_plugin() -> None:
    class Crashes:
        @hookimpl
        def kite_register_pickers(self, register: Any) -> None:
            raise RuntimeError("boom")

    with pytest.raises(
        PluginError, match=r"plugin 'Crashes' failed in kite_register_pickers: .*boom"
    ):
        load_plugins(names=(), extra_plugins=[Crashes()])


def test_lookups_return_what_was_registered() -> None:
    everything = Everything()
    registry = load_plugins(names=(), extra_plugins=[everything])

    assert registry.transport("fake").name == "fake"
    assert registry.authenticator("token")(None) == "token-authenticator"
    assert registry.picker("round_robin")() == "rr-picker"
    assert registry.storage_for_url("memory://") == "memory-storage"
    assert everything.opened == ["memory://"]
    command = registry.commands["hello"]
    assert (command.name, command.help, command.plugin) == ("hello", "say hello", "Everything")


def test_lookup_errors_list_what_is_installed() -> None:
    registry = load_plugins(names=(), extra_plugins=[Everything()])

    with pytest.raises(
        PluginError, match=r"^unknown picker 'foo'; installed pickers: random, round_robin$"
    ):
        registry.picker("foo")
    with pytest.raises(PluginError, match=r"^unknown storage 'etcd'; installed storages: memory$"):
        registry.storage_for_url("etcd://127.0.0.1:2379")
    with pytest.raises(
        PluginError, match=r"^unknown transport 'sockjs'; installed transports: fake$"
    ):
        registry.transport("sockjs")
    with pytest.raises(PluginError, match="has no scheme"):
        registry.storage_for_url("127.0.0.1:2379")

    empty = load_plugins(names=())
    with pytest.raises(PluginError, match=r"installed authenticators: none$"):
        empty.authenticator("kiteKey")


def test_command_names_clash() -> None:
    class MoreCommands:
        @hookimpl
        def kite_register_commands(self, commands: plugins.CommandRegistry) -> None:
            commands.register("hello", "also hello", lambda parser: None, lambda args: 1)

    with pytest.raises(PluginError, match=r"^command 'hello' is registered by both plugin"):
        load_plugins(names=(), extra_plugins=[Everything(), MoreCommands()])


def test_lifecycle_hooks_reach_plugins_through_the_manager() -> None:
    seen: list[tuple[str, Any]] = []

    class Observer:
        @hookimpl
        def kite_started(self, kite: Any, url: str) -> None:
            seen.append(("started", url))

        @hookimpl
        def kite_disconnected(self, client: Any) -> None:
            seen.append(("disconnected", client))

    registry = load_plugins(names=(), extra_plugins=[Observer()])
    registry.pm.hook.kite_started(kite="k", url="http://127.0.0.1:1/kite")
    registry.pm.hook.kite_disconnected(kite="k", client="c")

    assert seen == [("started", "http://127.0.0.1:1/kite"), ("disconnected", "c")]


def test_describe_says_where_each_plugin_comes_from(two_plugins: None) -> None:
    registry = load_plugins(names=["beta", "alpha"], extra_plugins=[Everything()])

    described = {entry["name"]: entry for entry in json.loads(json.dumps(registry.describe()))}
    assert described["alpha"] == {
        "name": "alpha",
        "module": "kite_test_alpha",
        "distribution": "kite-alpha-beta",
        "version": "1.2.3",
        "hooks": ["kite_register_pickers"],
    }
    assert described["Everything"]["distribution"] is None
    assert described["Everything"]["hooks"] == [
        "kite_register_authenticators",
        "kite_register_commands",
        "kite_register_pickers",
        "kite_register_storages",
        "kite_register_transports",
    ]


def test_process_registry_is_loaded_once_until_reset(
    two_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITE_PLUGINS", "alpha")
    first = plugins.get_registry()

    assert plugins.get_registry() is first
    assert list(first.pickers) == ["alpha"]
    plugins.reset_registry()
    assert plugins.get_registry() is not first


def test_hello_plugin_adds_its_method_and_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TEMPLATE))
    import kite_hello_plugin

    handled: dict[str, Any] = {}

    class FakeKite:
        def handle(self, name: str) -> Any:
            return lambda function: handled.setdefault(name, function)

    registry = load_plugins(names=(), extra_plugins=[kite_hello_plugin])
    registry.pm.hook.kite_register_methods(kite=FakeKite())

    assert handled == {"hello.greet": kite_hello_plugin.greet}
    assert registry.transport("hello").accepts("hello://anywhere")


def test_names_must_not_be_a_single_string() -> None:
    with pytest.raises(TypeError, match="not the string 'websocket'"):
        load_plugins(names="websocket")
