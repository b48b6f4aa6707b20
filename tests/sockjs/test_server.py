"""The SockJS server on a live socket: the conformance app's four services, driven with our
HTTP client, our websocket client and raw sockets."""

from __future__ import annotations

import json

import anyio
import pytest
from sockjs_helpers import App, eventually, get, post, raw_exchange, receiver_attached, serve_app

from kitecore.http.client import HTTPClient, connect_websocket
from kitecore.http.errors import HandshakeError

pytestmark = pytest.mark.anyio

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


# -- fixed answers ------------------------------------------------------------------------------


async def test_greeting_info_and_unknown_paths(app: App) -> None:
    async with HTTPClient() as http:
        for path in ("/echo", "/echo/"):
            answer = await get(http, app.url(path))
            assert (answer.status, answer.body) == (200, b"Welcome to SockJS!\n")
            assert "set-cookie" not in answer.headers
        for path in ("/echo/a", "/echo/a.html", "/echo//", "/echo/a/a/", "/echo/iframe.htm"):
            assert (await get(http, app.url(path))).status == 404, path
        info = await get(http, app.url("/echo/info"), origin="test")
        assert info.status == 200
        assert info.headers.get("cache-control") == NO_CACHE
        assert info.headers.get("access-control-allow-origin") == "test"
        assert info.headers.get("access-control-allow-credentials") == "true"
        body = json.loads(info.body)
        assert body["websocket"] is True and body["cookie_needed"] is False
        assert body["origins"] == ["*:*"]
        disabled = json.loads((await get(http, app.url("/disabled_websocket_echo/info"))).body)
        assert disabled["websocket"] is False
        cookie = json.loads((await get(http, app.url("/cookie_needed_echo/info"))).body)
        assert cookie["cookie_needed"] is True


async def test_iframe_etag_and_preflight(app: App) -> None:
    async with HTTPClient() as http:
        page = await get(http, app.url("/echo/iframe-0.1.2.html?t=1234"))
        assert page.status == 200 and b"SockJS.bootstrap_iframe();" in page.body
        etag = page.headers.get("etag")
        assert etag and "public" in (page.headers.get("cache-control") or "")
        again = await get(http, app.url("/echo/iframe.html"), if_none_match=etag)
        assert (again.status, again.body, again.headers.get("content-type")) == (304, b"", None)
        answer = await http.request(
            "OPTIONS",
            app.url("/echo/abc/abc/xhr"),
            headers=[("Origin", "null"), ("Access-Control-Request-Headers", "a, b")],
        )
        assert answer.status == 204 and answer.body == b""
        assert answer.headers.get("access-control-allow-methods") == "OPTIONS, POST"
        assert answer.headers.get("access-control-allow-origin") == "null"
        assert answer.headers.get("access-control-allow-headers") == "a, b"
        assert int(answer.headers.get("access-control-max-age") or 0) > 1000000


async def test_wrong_methods_are_405_without_body(app: App) -> None:
    async with HTTPClient() as http:
        for method, path in (("GET", "/echo/a/b/xhr"), ("POST", "/echo/a/b/websocket")):
            answer = await http.request(method, app.url(path))
            assert answer.status == 405, path
            assert answer.headers.get("allow") and answer.body == b""
            assert answer.headers.get("content-type") is None


# -- xhr polling --------------------------------------------------------------------------------


async def test_xhr_session_several_messages_per_frame(app: App) -> None:
    async with HTTPClient() as http:
        opened = await post(http, app.url("/echo/000/s1/xhr"), origin="test")
        assert (opened.status, opened.body) == (200, b"o\n")
        assert opened.headers.get("content-type") == "application/javascript; charset=UTF-8"
        assert opened.headers.get("cache-control") == NO_CACHE
        assert opened.headers.get("access-control-allow-origin") == "test"
        sent = await post(http, app.url("/echo/000/s1/xhr_send"), b'["a","b\\u2028"]')
        assert (sent.status, sent.body) == (204, b"")
        assert (await post(http, app.url("/echo/000/s1/xhr_send"), b'["c"]')).status == 204
        # the server id is ignored: another one reaches the same session
        polled = await post(http, app.url("/echo/999/s1/xhr"))
        assert polled.body == b'a["a","b\\u2028","c"]\n'


async def test_xhr_send_bad_payloads(app: App) -> None:
    async with HTTPClient() as http:
        assert (await post(http, app.url("/echo/000/nosuch/xhr_send"), b'["a"]')).status == 404
        await post(http, app.url("/echo/000/s2/xhr"))
        send = app.url("/echo/000/s2/xhr_send")
        for body, text in (
            (b"", b"Payload expected."),
            (b'["x', b"Broken JSON encoding."),
            (b'{"a": 1}', b"Payload expected."),
            (b"[1]", b"Payload expected."),
            (b"\xff\xfe", b"Broken JSON encoding."),
        ):
            answer = await post(http, send, body)
            assert (answer.status, answer.body) == (500, text), body
        assert (await post(http, send, b"[]")).status == 204
        assert (await post(http, send, b'["ok"]', content_type="T")).status == 204
        assert (await post(http, app.url("/echo/000/s2/xhr"))).body == b'a["ok"]\n'


async def test_second_receiver_gets_2010_and_the_first_still_works(app: App) -> None:
    async with HTTPClient() as http, anyio.create_task_group() as tg:
        await post(http, app.url("/echo/000/s3/xhr"))
        results: list[bytes] = []

        async def long_poll() -> None:
            results.append((await post(http, app.url("/echo/000/s3/xhr"))).body)

        tg.start_soon(long_poll)
        await receiver_attached(app.services["/echo"], "s3")
        busy = await post(http, app.url("/echo/000/s3/xhr"))
        assert (busy.status, busy.body) == (200, b'c[2010,"Another connection still open"]\n')
        await post(http, app.url("/echo/000/s3/xhr_send"), b'["x"]')
        await eventually(lambda: results)
    assert results == [b'a["x"]\n']


async def test_close_service_replays_the_close_frame(app: App) -> None:
    async with HTTPClient() as http:
        assert (await post(http, app.url("/close/000/s4/xhr"))).body == b"o\n"
        for _ in range(2):
            answer = await post(http, app.url("/close/000/s4/xhr"))
            assert answer.body == b'c[3000,"Go away!"]\n'


async def test_heartbeat_and_session_timeout() -> None:
    async with serve_app(heartbeat_delay=0.2, disconnect_delay=0.3) as app:
        async with HTTPClient() as http:
            await post(http, app.url("/echo/000/hb/xhr"))
            with anyio.fail_after(2):
                assert (await post(http, app.url("/echo/000/hb/xhr"))).body == b"h\n"
            assert app.services["/echo"].session_count == 1
            await anyio.sleep(1.5)  # no receiver for longer than the disconnect delay
            assert app.services["/echo"].session_count == 0
            answer = await post(http, app.url("/echo/000/hb/xhr_send"), b'["late"]')
            assert answer.status == 404
            assert (await post(http, app.url("/echo/000/hb/xhr"))).body == b"o\n"


async def test_aborted_poll_closes_the_session(app: App) -> None:
    async with HTTPClient() as http:
        await post(http, app.url("/echo/000/ab/xhr"))
        request = b"POST /echo/000/ab/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        assert await raw_exchange(app.port, request, timeout=0.3) == b""
        await receiver_attached(app.services["/echo"], "ab", attached=False)
        answer = await post(http, app.url("/echo/000/ab/xhr"))
        assert answer.body in (b"o\n", b'c[1002,"Connection interrupted"]\n')


# -- streaming transports ----------------------------------------------------------------------


async def test_xhr_streaming_prelude_chunks_and_response_limit(app: App) -> None:
    async with HTTPClient() as http:
        url = app.url("/echo/000/st/xhr_streaming")
        async with http.stream("POST", url, headers=[("Origin", "test")]) as response:
            assert response.status == 200
            assert response.headers.get("transfer-encoding") == "chunked"
            body = response.__aiter__()
            assert await body.__anext__() == b"h" * 2048 + b"\n"
            assert await body.__anext__() == b"o\n"
            await post(http, app.url("/echo/000/st/xhr_send"), b'["x"]')
            assert await body.__anext__() == b'a["x"]\n'
            message = json.dumps(["x" * 128])
            for _ in range(31):
                await post(http, app.url("/echo/000/st/xhr_send"), message.encode())
            with anyio.fail_after(5):
                rest = b"".join([chunk async for chunk in body])
            assert rest.count(b"\n") == 31  # the 4096-byte limit ended the response
        # the session survives its receiver
        assert (await post(http, app.url("/echo/000/st/xhr"))).status == 200


async def test_eventsource_htmlfile_and_jsonp(app: App) -> None:
    async with HTTPClient() as http:
        async with http.stream("GET", app.url("/echo/000/ev/eventsource")) as response:
            assert response.headers.get("content-type") == "text/event-stream"
            body = response.__aiter__()
            assert await body.__anext__() == b"\r\n"
            assert await body.__anext__() == b"data: o\r\n\r\n"
            await post(http, app.url("/echo/000/ev/xhr_send"), b'["  \\u0000\\n\\r %"]')
            frame = await body.__anext__()
            assert frame == b'data: a["  \\u0000\\n\\r %25"]\r\n\r\n'
        url = app.url("/echo/000/hf/htmlfile?c=%63allback")
        async with http.stream("GET", url) as response:
            body = response.__aiter__()
            prelude = await body.__anext__()
            assert len(prelude) > 1024 and b"var c = parent.callback;" in prelude
            assert await body.__anext__() == b'<script>\np("o");\n</script>\r\n'
        for query in ("", "?c=abc(", "?c=%20"):
            answer = await get(http, app.url("/echo/000/hf2/htmlfile" + query))
            assert answer.status == 500 and b"callback" in answer.body
        jsonp = await get(http, app.url("/echo/000/jp/jsonp?c=cb"))
        assert jsonp.body == b'/**/cb("o");\r\n'
        ctype = "application/x-www-form-urlencoded"
        sent = await post(
            http, app.url("/echo/000/jp/jsonp_send"), b"d=%5B%22x%22%5D", content_type=ctype
        )
        assert (sent.status, sent.body) == (200, b"ok")
        for body in (b"d=%5B%22x", b"d=", b"p=p"):
            bad = await post(http, app.url("/echo/000/jp/jsonp_send"), body, content_type=ctype)
            assert bad.status == 500
        polled = await get(http, app.url("/echo/000/jp/jsonp?c=cb"))
        assert polled.body == b'/**/cb("a[\\"x\\"]");\r\n'


async def test_jsessionid_cookie_is_set_and_echoed(app: App) -> None:
    async with HTTPClient() as http:
        first = await post(http, app.url("/cookie_needed_echo/000/c1/xhr"))
        assert first.headers.get("set-cookie") == "JSESSIONID=dummy; path=/"
        url = app.url("/cookie_needed_echo/000/c2/xhr")
        echoed = await post(http, url, cookie="JSESSIONID=abcdef")
        assert echoed.headers.get("set-cookie") == "JSESSIONID=abcdef; path=/"
        plain = await post(http, app.url("/echo/000/c3/xhr"))
        assert plain.headers.get("set-cookie") is None


# -- websocket ----------------------------------------------------------------------------------


async def test_websocket_session_echo_and_batches(app: App) -> None:
    ws = await connect_websocket(f"ws://127.0.0.1:{app.port}/echo/000/w1/websocket")
    try:
        assert await ws.receive() == "o"
        await ws.send('["a","b"]')
        received = [await ws.receive()]
        while sum(json.loads(f[1:]).__len__() for f in received) < 2:
            received.append(await ws.receive())
        assert [m for f in received for m in json.loads(f[1:])] == ["a", "b"]
        await ws.send("")  # ignored
        await ws.send("[]")  # ignored
        await ws.send('"c"')  # a bare string is one message
        assert await ws.receive() == 'a["c"]'
    finally:
        await ws.aclose()


async def test_websocket_close_service_and_broken_json(app: App) -> None:
    ws = await connect_websocket(f"ws://127.0.0.1:{app.port}/close/000/w2/websocket")
    assert await ws.receive() == "o"
    assert await ws.receive() == 'c[3000,"Go away!"]'
    with pytest.raises(anyio.EndOfStream):
        await ws.receive()
    ws = await connect_websocket(f"ws://127.0.0.1:{app.port}/echo/000/w3/websocket")
    assert await ws.receive() == "o"
    await ws.send('["a')
    with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
        while True:
            await ws.receive()


async def test_websocket_disabled_and_plain_get(app: App) -> None:
    with pytest.raises(HandshakeError) as info:
        await connect_websocket(f"ws://127.0.0.1:{app.port}/disabled_websocket_echo/0/w/websocket")
    assert info.value.status_code == 404
    async with HTTPClient() as http:
        assert (await get(http, app.url("/echo/000/w4/websocket"))).status == 400
        closing = await get(http, app.url("/echo/000/w4/websocket"), upgrade="WebSocket")
        assert closing.status == 400


async def test_raw_websocket(app: App) -> None:
    ws = await connect_websocket(f"ws://127.0.0.1:{app.port}/echo/websocket")
    await ws.send("Hello world!\uffff")
    assert await ws.receive() == "Hello world!\uffff"
    await ws.aclose()
    ws = await connect_websocket(f"ws://127.0.0.1:{app.port}/close/websocket")
    with pytest.raises(anyio.EndOfStream):
        await ws.receive()
    assert (ws.close_code, ws.close_reason) == (3000, "Go away!")


# -- bad input never hurts the server ---------------------------------------------------------


async def test_malformed_requests_do_not_disturb_the_server(app: App) -> None:
    garbage = [
        b"\x00\xff\x16\x03garbage\r\n\r\n",
        b'POST /echo/000/m/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n["a',
        b"GET /echo/000/m/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n",
        b"POST /echo/000/m/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    ]
    for data in garbage:
        answer = await raw_exchange(app.port, data, timeout=1.0)
        assert not answer or answer.startswith(b"HTTP/1.1 4"), answer[:40]
    async with HTTPClient() as http:
        assert (await post(http, app.url("/echo/000/m2/xhr"))).body == b"o\n"
