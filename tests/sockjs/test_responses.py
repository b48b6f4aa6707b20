"""Status codes, headers and bodies of the fixed SockJS answers."""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime

import pytest
from kite_transport_sockjs import (
    Framing,
    PayloadError,
    Route,
    RouteKind,
    SockJSConfig,
    Transport,
)
from kite_transport_sockjs import responses as r

CONFIG = SockJSConfig()
COOKIES = SockJSConfig(jsessionid=True)
NOW = 1_700_000_000.0
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
IFRAME = re.compile(
    r"""^<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="(?P<sockjs_url>[^"]*)"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe\(\);
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>$"""
)


def ctype(resp: r.Response) -> str | None:
    value = resp.header("content-type")
    return None if value is None else value.replace(" ", "")


def assert_not_cached(resp: r.Response) -> None:
    assert resp.header("Cache-Control") == NO_CACHE
    assert resp.header("Expires") is None
    assert resp.header("Last-Modified") is None


def assert_cacheable(resp: r.Response) -> None:
    cache = resp.header("Cache-Control") or ""
    assert "public" in cache
    assert re.search("max-age=[1-9][0-9]{6}", cache)
    expires = parsedate_to_datetime(resp.header("Expires") or "")
    assert expires.timestamp() == NOW + r.CACHE_SECONDS


def test_greeting() -> None:
    resp = r.greeting()
    assert (resp.status, resp.body) == (200, b"Welcome to SockJS!\n")
    assert ctype(resp) == "text/plain;charset=UTF-8"
    assert resp.header("Set-Cookie") is None


def test_not_found_and_method_not_allowed() -> None:
    assert r.not_found().status == 404
    resp = r.method_not_allowed(("GET",))
    assert (resp.status, resp.body, resp.header("Allow")) == (405, b"", "GET")
    assert resp.header("Content-Type") is None


def test_info_with_origin() -> None:
    resp = r.info(COOKIES, {"origin": "test"}, entropy=7)
    assert resp.status == 200
    assert ctype(resp) == "application/json;charset=UTF-8"
    assert_not_cached(resp)
    assert resp.header("Set-Cookie") is None  # not even when cookie_needed
    assert resp.header("Access-Control-Allow-Origin") == "test"
    assert resp.header("Access-Control-Allow-Credentials") == "true"
    body = json.loads(resp.body)
    assert body == {"websocket": True, "cookie_needed": True, "origins": ["*:*"], "entropy": 7}


def test_info_entropy_is_random_32_bit() -> None:
    values = {json.loads(r.info(CONFIG, {}).body)["entropy"] for _ in range(5)}
    assert len(values) > 1
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in values)


def test_info_websocket_flag() -> None:
    assert json.loads(r.info(SockJSConfig(websocket=False), {}).body)["websocket"] is False


def test_cors_without_origin_is_star_without_credentials() -> None:
    headers = dict(r.cors_headers({}))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


def test_cors_echoes_null_origin_and_requested_headers() -> None:
    headers = dict(r.cors_headers({"origin": "null", "access-control-request-headers": "a, b, c"}))
    assert headers["Access-Control-Allow-Origin"] == "null"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Allow-Headers"] == "a, b, c"
    empty = dict(r.cors_headers({"origin": "test", "access-control-request-headers": ""}))
    assert "Access-Control-Allow-Headers" not in empty


@pytest.mark.parametrize(
    ("route", "methods"),
    [
        (Route(RouteKind.INFO), "OPTIONS, GET"),
        (Route(RouteKind.SESSION, "abc", "abc", Transport.XHR), "OPTIONS, POST"),
        (Route(RouteKind.SESSION, "abc", "abc", Transport.XHR_SEND), "OPTIONS, POST"),
        (Route(RouteKind.SESSION, "abc", "abc", Transport.XHR_STREAMING), "OPTIONS, POST"),
    ],
)
@pytest.mark.parametrize("origin", ["test", "null"])
def test_preflight(route: Route, methods: str, origin: str) -> None:
    resp = r.preflight(route, CONFIG, {"origin": origin}, NOW)
    assert resp.status in (200, 204)
    assert resp.body == b""
    assert_cacheable(resp)
    assert int(resp.header("Access-Control-Max-Age") or 0) > 1_000_000
    assert resp.header("Access-Control-Allow-Methods") == methods
    assert resp.header("Access-Control-Allow-Origin") == origin
    assert resp.header("Access-Control-Allow-Credentials") == "true"


def test_iframe_page_etag_and_304() -> None:
    first = r.iframe(CONFIG, {}, NOW)
    assert first.status == 200
    assert ctype(first) == "text/html;charset=UTF-8"
    assert_cacheable(first)
    assert first.header("Last-Modified") is None and first.header("Set-Cookie") is None
    match = IFRAME.match(first.body.decode())
    assert match and match.group("sockjs_url").startswith(("/", "http"))
    etag = first.header("ETag")
    assert etag and etag == r.iframe(CONFIG, {}, NOW + 5).header("ETag")
    cached = r.iframe(CONFIG, {"if-none-match": etag}, NOW)
    assert (cached.status, cached.body, cached.header("Content-Type")) == (304, b"", None)
    assert r.iframe(CONFIG, {"if-none-match": '"other"'}, NOW).status == 200


def test_iframe_etag_follows_the_client_url() -> None:
    other = SockJSConfig(sockjs_url="/static/sockjs.js")
    assert r.iframe(other, {}, NOW).header("ETag") != r.iframe(CONFIG, {}, NOW).header("ETag")


def test_xhr_send_accepted() -> None:
    resp = r.send_accepted(Transport.XHR_SEND, CONFIG, {"origin": "test"})
    assert (resp.status, resp.body) == (204, b"")
    assert ctype(resp) == "text/plain;charset=UTF-8"
    assert_not_cached(resp)
    assert resp.header("Access-Control-Allow-Origin") == "test"


def test_jsonp_send_accepted() -> None:
    resp = r.send_accepted(Transport.JSONP_SEND, COOKIES, {})
    assert (resp.status, resp.body) == (200, b"ok")
    assert ctype(resp) == "text/plain;charset=UTF-8"
    assert_not_cached(resp)
    assert resp.header("Set-Cookie") == "JSESSIONID=dummy; path=/"


def test_error_answer() -> None:
    resp = r.error(PayloadError(500, "Payload expected."))
    assert (resp.status, resp.body) == (500, b"Payload expected.")
    assert ctype(resp) == "text/plain;charset=UTF-8"


@pytest.mark.parametrize(
    ("framing", "content_type", "cors"),
    [
        (Framing(Transport.XHR), "application/javascript;charset=UTF-8", True),
        (Framing(Transport.XHR_STREAMING), "application/javascript;charset=UTF-8", True),
        (Framing(Transport.EVENTSOURCE), "text/event-stream", True),
        (Framing(Transport.HTMLFILE, "cb"), "text/html;charset=UTF-8", False),
        (Framing(Transport.JSONP, "cb"), "application/javascript;charset=UTF-8", False),
    ],
)
def test_receiving_heads(framing: Framing, content_type: str, cors: bool) -> None:
    resp = r.receiving_head(framing, CONFIG, {"origin": "test"})
    assert resp.status == 200
    assert ctype(resp) == content_type
    assert_not_cached(resp)
    assert resp.header("Set-Cookie") is None
    assert (resp.header("Access-Control-Allow-Origin") == "test") is cors


def test_jsonp_head_forbids_sniffing() -> None:
    resp = r.receiving_head(Framing(Transport.JSONP, "cb"), CONFIG, {})
    assert resp.header("X-Content-Type-Options") == "nosniff"


def test_jsessionid_cookie_set_or_echoed() -> None:
    head = r.receiving_head(Framing(Transport.XHR), COOKIES, {})
    assert head.header("Set-Cookie") == "JSESSIONID=dummy; path=/"
    echoed = r.receiving_head(Framing(Transport.XHR), COOKIES, {"cookie": "a=1; JSESSIONID=abcdef"})
    assert echoed.header("Set-Cookie") == "JSESSIONID=abcdef; path=/"
    assert r.jsessionid_headers(CONFIG, {"cookie": "JSESSIONID=x"}) == ()


def test_websocket_upgrade_check() -> None:
    good = {"upgrade": "websocket", "connection": "keep-alive, Upgrade"}
    assert r.is_websocket_upgrade("GET", good)
    assert not r.is_websocket_upgrade("GET", {})
    assert not r.is_websocket_upgrade("GET", {"upgrade": "WebSocket", "connection": "close"})
    assert not r.is_websocket_upgrade("POST", good)
    bad = r.websocket_bad_request()
    assert (bad.status, bad.body) == (400, b"Not a valid websocket request")
