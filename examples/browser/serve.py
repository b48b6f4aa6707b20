"""A kite that a web page calls: serves ``square`` and ``countdown``, and the page itself.

Run:  python examples/browser/serve.py [--port 6100]    then open http://127.0.0.1:6100/

The page (``index.html`` + ``app.js``) loads kite.js's browser bundle, which this kite serves
from ``build/node/node_modules`` (``scripts/test.sh`` installs it there; by hand:
``npm install --no-save --prefix build/node kite.js@1.0.13``). kite.js connects to this kite
over SockJS at ``/kite`` and calls its methods; the results appear in the page. Add
``?transport=xhr-polling`` (or ``xhr-streaming``, ``eventsource``, ...) to the page URL to pick
the SockJS transport the browser uses.
"""

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from kitecore import Kite
from kitecore.http import HTTPRequest, HTTPResponse

HERE = Path(__file__).resolve().parent
BUNDLE = Path("kite.js", "dist", "bundle.min.js")

k = Kite("browser-demo", "1.0.0")
k.config.disable_authentication = True  # the page has no kite token


@k.handle("square")
async def square(r) -> float:
    """square(x) -> x * x"""
    a = r.args.one(float)
    return a * a


@k.handle("countdown")
async def countdown(r) -> str:
    """countdown(n, callback): calls callback(n), ..., callback(1), then returns "done"."""
    n, callback = r.args.integer(0), r.args.function(1)
    for i in range(n, 0, -1):
        await callback(i)
        await anyio.sleep(0.1)  # slow enough to watch the numbers arrive
    return "done"


def find_bundle() -> Path:
    """kite.js's browser bundle, looked up in NODE_PATH and then in build/node."""
    folders = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    folders.append(str(HERE.parents[1] / "build" / "node" / "node_modules"))
    for folder in folders:
        if (Path(folder) / BUNDLE).is_file():
            return Path(folder) / BUNDLE
    sys.exit(f"{BUNDLE} not found in {folders}: npm install --prefix build/node kite.js@1.0.13")


def static(body: bytes, content_type: str) -> Callable[..., Awaitable[None]]:
    """An HTTP handler that answers GET with ``body``."""

    async def handler(request: HTTPRequest, response: HTTPResponse) -> None:
        await response.send(200, [("content-type", content_type)], body)

    return handler


async def main(host: str, port: int) -> None:
    if "sockjs" not in k.plugins.transports:
        sys.exit("the sockjs transport is missing: pip install plugins/kite-transport-sockjs")
    k.config.ip, k.config.port = host, port
    html, js = "text/html; charset=utf-8", "text/javascript; charset=utf-8"
    pages = {"/": (HERE / "index.html", html), "/app.js": (HERE / "app.js", js)}
    pages["/kite.js"] = (find_bundle(), js)
    for path, (file, content_type) in pages.items():
        k.handle_http(path, static(file.read_bytes(), content_type), methods=["GET"])
    async with k:
        scheme = "https" if k.url.startswith("https://") else "http"  # KITE_TLS_CERT_FILE set
        print(f"open {scheme}://{host}:{k.port}/ in a browser", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6100, help="0 picks a free port")
    args = parser.parse_args()
    try:
        anyio.run(main, args.host, args.port)
    except KeyboardInterrupt:
        pass
