"""examples/browser: a page in headless Chromium calls a Python kite through kite.js + SockJS.

The example kite runs as a subprocess (``python examples/browser/serve.py --port 0``); one
Chromium, driven by ``drive_page.js`` (playwright-core), opens the page once per SockJS
transport; the tests check what the page shows.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SERVE = HERE.parents[1] / "examples" / "browser" / "serve.py"
#: The SockJS transports sockjs-client uses in a same-origin page (the iframe-* ones would load
#: sockjs-client from a CDN inside the iframe, which this offline test cannot reach).
TRANSPORTS = (
    "websocket",
    "xhr-streaming",
    "eventsource",
    "htmlfile",
    "xhr-polling",
    "jsonp-polling",
)
EXPECTED = {
    "status": "done",
    "ping": "pong",
    "square": "16",
    "ticks": "3 2 1",  # countdown's callback, called by the kite three times
    "countdown": "done",
    "answer": "144",  # the form: square(12), typed in and submitted by the test
    "errors": [],
    "foreignRequests": [],  # the page loads nothing from outside the kite
}


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line ``process`` prints, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no output from {process.args} within {timeout} s")
    return process.stdout.readline()


@pytest.fixture(scope="module")
def page_url(node_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the page served by the example kite, which runs while the module's tests do."""
    home = tmp_path_factory.mktemp("kite-home")
    env = {**node_env, "KITE_HOME": str(home)}
    command = [sys.executable, str(SERVE), "--port", "0"]
    with (
        (home / "serve.log").open("w") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, env=env, text=True
        ) as process,
    ):
        try:
            line = first_line(process, timeout=30)
            assert line.startswith("open http://"), (line, (home / "serve.log").read_text())
            yield line.split()[1]
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def shown(page_url: str, node_env: dict[str, str], chromium: str) -> dict[str, Any]:
    """What the page showed, per SockJS transport."""
    command = ["node", str(HERE / "drive_page.js"), page_url, chromium, *TRANSPORTS]
    done = subprocess.run(command, env=node_env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_page_and_scripts_are_served(page_url: str) -> None:
    expected = {"": "text/html", "app.js": "text/javascript", "kite.js": "text/javascript"}
    for path, content_type in expected.items():
        with urllib.request.urlopen(page_url + path, timeout=10) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith(content_type)
            assert response.read()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_page_shows_results(shown: dict[str, Any], transport: str) -> None:
    assert shown[transport] == {**EXPECTED, "transport": transport}
