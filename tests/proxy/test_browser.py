"""A page in headless Chromium calls a kite with no listening port through the tunnel proxy
(kite.js's browser bundle, SockJS websocket and xhr-polling, cross-origin)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from node_packages import NODE_PREFIX, node_environment, unavailable
from proxy_helpers import Farm

from kitecore import Kite
from kitecore.http import HTTPRequest, HTTPResponse

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
BUNDLE = NODE_PREFIX / "node_modules" / "kite.js" / "dist" / "bundle.min.js"
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>through the tunnel</title></head>
<body><p id="status">starting</p>
<script src="/kite.js"></script>
<script>
const q = new URLSearchParams(location.search)
const kite = new Kite({
  url: q.get('url'), autoReconnect: false, logLevel: 0,
  auth: { type: 'token', key: q.get('token') },
  transportClass: Kite.transport.SockJS,
  transportOptions: { transports: [q.get('transport')] },
})
const status = document.getElementById('status')
kite.on('open', () => {
  Promise.all([kite.tell('square', [4]), kite.tell('length', ['x'.repeat(100000)])]).then(
    ([square, length]) => { status.textContent = 'done ' + square + ' ' + length },
    err => { status.textContent = 'error ' + err.message })
})
</script></body></html>
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the browser does the calling


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium (Debian package) is needed for the browser tests")
    assert path is not None
    return path


def static(body: bytes, content_type: str) -> Any:
    async def handler(request: HTTPRequest, response: HTTPResponse) -> None:
        await response.send(200, [("content-type", content_type)], body)

    return handler


async def test_a_browser_page_calls_a_kite_through_the_tunnel(farm: Farm, chromium: str) -> None:
    env = node_environment()
    await farm.tunnel_proxy()
    kite = farm.kite()
    public, _ = await farm.behind_tunnel(kite)
    caller = farm.config()
    site = Kite("site", "1.0.0", config=caller, plugins=farm.plugins)
    site.handle_http("/page", static(PAGE, "text/html; charset=utf-8"), methods=["GET"])
    site.handle_http("/kite.js", static(BUNDLE.read_bytes(), "text/javascript"), methods=["GET"])
    await farm.start(lambda: site)
    token = await site.get_token({"name": "square", "username": "alice"})
    page = f"http://127.0.0.1:{site.port}/page?url={quote(public, safe='')}&token={token}"
    transports = ["websocket", "xhr-polling"]
    command = ["node", str(HERE / "drive_proxy_page.js"), page, chromium, *transports]
    with anyio.fail_after(150):
        done = await anyio.run_process(command, env=env, stderr=subprocess.STDOUT, check=False)
    output = done.stdout.decode()
    results = json.loads(output.strip().splitlines()[-1])
    for transport in transports:
        assert results[transport] == {"status": "done 16 100000", "errors": []}, output
