"""The core's own pickers: a pool works with kitecore alone (issue 9, item 6)."""

from __future__ import annotations

import pytest

from kitecore.pickers import PickerBase, RandomPicker, RoundRobinPicker
from kitecore.plugins import PluginError, load_plugins
from kitecore.pool import make_picker


def test_round_robin_and_random_are_built_in():
    bare = load_plugins(names=())  # no plugin registers any picker
    assert bare.pickers == {}
    round_robin = make_picker(bare, "round_robin")
    assert isinstance(round_robin, RoundRobinPicker)
    candidates = ["a", "b", "c"]
    assert [round_robin.pick(candidates) for _ in range(4)] == ["a", "b", "c", "a"]  # type: ignore[arg-type]
    random_picker = make_picker(bare, "random", {"seed": 1})
    assert isinstance(random_picker, RandomPicker)
    assert random_picker.pick(candidates) in candidates  # type: ignore[arg-type]


def test_a_plugin_picker_of_the_same_name_wins():
    class Mine(PickerBase):
        name = "round_robin"

    class Plugin:
        from kitecore import hookimpl

        @hookimpl
        def kite_register_pickers(self, register):
            register("round_robin", Mine)

    registry = load_plugins(names=(), extra_plugins=[Plugin()])
    assert isinstance(make_picker(registry, "round_robin"), Mine)


def test_a_picker_of_a_missing_plugin_says_what_to_install():
    with pytest.raises(PluginError) as caught:
        make_picker(load_plugins(names=()), "least_latency")
    assert str(caught.value) == (
        "unknown picker 'least_latency'; installed pickers: random, round_robin "
        "(least_latency comes with kite-pickers: pip install ./plugins/kite-pickers in a checkout)"
    )
    with pytest.raises(PluginError, match=r"^unknown picker 'fastets'; installed pickers: random"):
        make_picker(load_plugins(names=()), "fastets")
