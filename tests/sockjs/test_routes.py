"""URL layout: which endpoint a path names, and which methods it takes."""

from __future__ import annotations

import pytest
from kite_transport_sockjs import Route, RouteKind, SockJSConfig, Transport, allowed_methods
from kite_transport_sockjs import match_route as match

CONFIG = SockJSConfig()


@pytest.mark.parametrize("path", ["", "/"])
def test_greeting(path: str) -> None:
    assert match(path, CONFIG) == Route(RouteKind.GREETING)


@pytest.mark.parametrize("path", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"])
def test_not_found(path: str) -> None:
    assert match(path, CONFIG) is None


def test_info() -> None:
    route = match("/info", CONFIG)
    assert route == Route(RouteKind.INFO)
    assert allowed_methods(route) == ("GET", "OPTIONS")


@pytest.mark.parametrize(
    "path",
    ["/iframe.html", "/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html",
     "/iframe-0.1.2abc-dirty.2144.html"],
)  # fmt: skip
def test_iframe_variants(path: str) -> None:
    assert match(path, CONFIG) == Route(RouteKind.IFRAME)


@pytest.mark.parametrize(
    "path",
    ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML", "/iframe.xml",
     "/iframe-/.html"],
)  # fmt: skip
def test_iframe_malformed(path: str) -> None:
    assert match(path, CONFIG) is None


@pytest.mark.parametrize(
    ("path", "server", "session"),
    [("/a/a1/xhr", "a", "a1"), ("/_/_1/xhr", "_", "_1"), ("/1/2/xhr", "1", "2"),
     ("/abcdefgh_i-j%20/abcdefg_i-j%201/xhr", "abcdefgh_i-j%20", "abcdefg_i-j%201")],
)  # fmt: skip
def test_session_urls_take_any_ids(path: str, server: str, session: str) -> None:
    assert match(path, CONFIG) == Route(RouteKind.SESSION, server, session, Transport.XHR)


@pytest.mark.parametrize("ids", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
def test_session_urls_reject_bad_ids(ids: str) -> None:
    assert match(ids + "/xhr", CONFIG) is None


def test_every_transport_is_routed_with_its_methods() -> None:
    expected = {
        "websocket": ("GET",),
        "xhr": ("POST", "OPTIONS"),
        "xhr_send": ("POST", "OPTIONS"),
        "xhr_streaming": ("POST", "OPTIONS"),
        "eventsource": ("GET",),
        "htmlfile": ("GET",),
        "jsonp": ("GET",),
        "jsonp_send": ("POST",),
    }
    for name, methods in expected.items():
        route = match(f"/000/sid/{name}", CONFIG)
        assert route is not None and route.transport is Transport(name)
        assert allowed_methods(route) == methods
    assert match("/000/sid/bogus", CONFIG) is None


def test_websocket_can_be_disabled() -> None:
    assert match("/0/0/websocket", SockJSConfig(websocket=False)) is None
    assert match("/0/0/xhr", SockJSConfig(websocket=False)) is not None


def test_raw_websocket_only_when_enabled() -> None:
    assert match("/websocket", CONFIG) is None
    route = match("/websocket", SockJSConfig(raw_websocket=True))
    assert route == Route(RouteKind.RAW_WEBSOCKET)
    assert allowed_methods(route) == ("GET",)
