"""Bad ``KITE_*`` values: one line naming the variable and the value (issue 9, item 7)."""

from __future__ import annotations

import pytest

from kitecore.config import Config, ConfigError


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("KITE_TIMEOUT", "abc", "expected a duration above zero"),
        ("KITE_TIMEOUT", "0", "expected a duration above zero"),
        ("KITE_TIMEOUT", "-3s", "expected a duration above zero"),
        ("KITE_TIMEOUT", "inf", "expected a duration above zero"),
        ("KITE_HANDSHAKE_TIMEOUT", "soon", "expected a duration above zero"),
        ("KITE_PORT", "sixty", "expected a port number from 0 (any free port) to 65535"),
        ("KITE_PORT", "-1", "expected a port number"),
        ("KITE_PORT", "65536", "expected a port number"),
        ("KITE_MAX_MESSAGE_SIZE", "0", "expected a whole number above zero"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(tmp_path, var, value, expected):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"KITE_HOME": str(tmp_path), var: value})
    message = str(caught.value)
    assert message == f"{var}={value!r} is invalid: {message.split(': ', 1)[1]}"
    assert expected in message
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)  # what callers caught before


def test_good_values_still_parse(tmp_path):
    config = Config.from_env(
        {"KITE_HOME": str(tmp_path), "KITE_PORT": "0", "KITE_TIMEOUT": "1m30s"}
    )
    assert (config.port, config.timeout) == (0, 90.0)
