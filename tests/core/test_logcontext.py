"""Log lines about a call carry its request id, method and peer; JSON logs from ``kite``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kitecore.logcontext import CallContextFilter, JSONFormatter, TextFormatter
from kitecore.protocol.errors import GenericError

KITE = [sys.executable, "-m", "kitecore.cli"]
app_logger = logging.getLogger("tests.app")


async def fail(r: Any) -> None:
    app_logger.warning("about to fail on %s", r.args.one())
    raise RuntimeError("boom")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """JSON and text lines of every record, with the call context filter."""
    streams = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in zip(streams, (JSONFormatter(), TextFormatter()), strict=True):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(CallContextFilter())
        handlers.append(handler)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    for handler in handlers:
        root.addHandler(handler)
    yield streams
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.anyio
async def test_log_lines_of_a_call_carry_its_request_id_method_and_peer(
    make_kite: Any, captured: tuple[io.StringIO, io.StringIO]
) -> None:
    server = await make_kite("server", methods={"fail": fail})
    caller = await make_kite("caller")
    app_logger.info("outside any call")
    async with caller.new_client(server.url) as client:
        with pytest.raises(GenericError, match="boom") as failed:
            await client.tell("fail", 7)
    request_id = failed.value.id
    assert request_id and f"({request_id})" in str(failed.value)  # what the caller sees

    entries = [json.loads(line) for line in captured[0].getvalue().splitlines()]
    outside = next(e for e in entries if e["message"] == "outside any call")
    assert "request_id" not in outside
    in_handler = next(e for e in entries if e["message"] == "about to fail on 7")
    assert in_handler["request_id"] == request_id
    assert in_handler["method"] == "fail"
    assert in_handler["peer"].startswith("127.0.0.1:")
    assert in_handler["logger"] == "tests.app" and in_handler["level"] == "WARNING"
    core = next(e for e in entries if "handler of fail raised" in e["message"])
    assert core["request_id"] == request_id and "RuntimeError: boom" in core["exc_info"]

    text = captured[1].getvalue()
    assert f"about to fail on 7 [request={request_id} method=fail peer=127.0.0.1:" in text
    assert "outside any call\n" in text


def run_kite(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "KITE_LOG_FORMAT"}
    environ.update(KITE_PLUGINS="websocket,loopback", **env)
    return subprocess.run(
        [*KITE, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


@pytest.mark.parametrize("how", ["option", "env"])
def test_kite_commands_log_json_lines(how: str, tmp_path: Any) -> None:
    if how == "option":
        done = run_kite("--log-format", "json", "-v", "demo", KITE_HOME=str(tmp_path))
    else:
        done = run_kite("-v", "demo", KITE_HOME=str(tmp_path), KITE_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    assert "square(4) = 16" in done.stdout
    lines = done.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("serving on" in e["message"] and e["logger"] == "kitecore.kite" for e in entries)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_kite_refuses_an_unknown_log_format(tmp_path: Any) -> None:
    done = run_kite("plugins", KITE_HOME=str(tmp_path), KITE_LOG_FORMAT="xml")
    assert done.returncode == 2
    assert "unknown log format 'xml'" in done.stderr
