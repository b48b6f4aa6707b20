"""The HTTP side of HTTPServer, over real sockets."""

from __future__ import annotations

import logging
import re

import anyio
import pytest
from http_helpers import read_http_response, serving

from kitecore.http import HTTPClient, HTTPRequest, HTTPResponse, HTTPServer

pytestmark = pytest.mark.anyio


async def echo_handler(request: HTTPRequest, response: HTTPResponse) -> None:
    body = f"{request.method} {request.path} {request.query} {request.body!r}".encode()
    await response.send(200, [("content-type", "text/plain"), ("set-cookie", "sid=1")], body)


def make_server(**options: object) -> HTTPServer:
    server = HTTPServer(**options)  # type: ignore[arg-type]
    server.add_route("/echo", echo_handler, methods=["GET", "POST"])

    async def session(request: HTTPRequest, response: HTTPResponse) -> None:
        assert request.match is not None
        await response.send(
            200, [], f"{request.match['server']}/{request.match['session']}".encode()
        )

    server.add_route(re.compile(r"/kite/(?P<server>[^/.]+)/(?P<session>[^/.]+)/xhr"), session)
    return server


async def test_routing_200_404_405() -> None:
    async with serving(make_server()) as port, HTTPClient() as client:
        base = f"http://127.0.0.1:{port}"
        ok = await client.request("POST", base + "/echo?a=1&a=2&b=", body=b"hi")
        assert ok.status == 200
        assert ok.body == b"POST /echo {'a': ['1', '2'], 'b': ['']} b'hi'"
        assert ok.headers.get("Content-Type") == "text/plain"
        regex = await client.request("POST", base + "/kite/123/abcdef/xhr")
        assert (regex.status, regex.body) == (200, b"123/abcdef")
        assert (await client.request("GET", base + "/kite/1.2/x/xhr")).status == 404
        assert (await client.request("GET", base + "/missing")).status == 404
        wrong = await client.request("DELETE", base + "/echo")
        assert wrong.status == 405
        assert wrong.headers.get("allow") == "GET, POST"


async def test_bad_request_gets_400_and_others_are_unaffected() -> None:
    async with serving(make_server()) as port:
        bad = await anyio.connect_tcp("127.0.0.1", port)
        await bad.send(b"NOT HTTP AT ALL\r\n\r\n")
        head, _ = await read_http_response(bad, bytearray())
        assert head.startswith(b"HTTP/1.1 400 ")
        with pytest.raises(anyio.EndOfStream):
            await bad.receive()  # the server closed the bad connection
        async with HTTPClient() as client:
            assert (await client.request("GET", f"http://127.0.0.1:{port}/echo")).status == 200


async def test_body_over_limit_gets_413() -> None:
    async with serving(make_server(max_body_size=1000)) as port, HTTPClient() as client:
        url = f"http://127.0.0.1:{port}/echo"
        assert (await client.request("POST", url, body=b"x" * 1000)).status == 200
        assert (await client.request("POST", url, body=b"x" * 1001)).status == 413
        chunked = await anyio.connect_tcp("127.0.0.1", port)
        await chunked.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"3e8\r\n"
            + b"y" * 1000
            + b"\r\n"
            + b"1\r\nz\r\n0\r\n\r\n"
        )
        head, _ = await read_http_response(chunked, bytearray())
        assert head.startswith(b"HTTP/1.1 413 ")


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    async with serving(make_server()) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        buffer = bytearray()
        for path in (b"/echo?n=1", b"/echo?n=2"):
            await stream.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = await read_http_response(stream, buffer)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert path.split(b"=")[1] in body
        await stream.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _ = await read_http_response(stream, buffer)
        assert b"connection: close" in head.lower()
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_client_reuses_keep_alive_connections() -> None:
    server = HTTPServer()
    remotes: list[str] = []

    async def who(request: HTTPRequest, response: HTTPResponse) -> None:
        remotes.append(request.remote_address)
        await response.send(200, [], b"")

    server.add_route("/who", who)
    async with serving(server) as port, HTTPClient() as client:
        for _ in range(3):
            await client.request("GET", f"http://127.0.0.1:{port}/who")
    assert len(remotes) == 3 and len(set(remotes)) == 1
    assert remotes[0].startswith("127.0.0.1:")


async def test_streaming_response_arrives_chunk_by_chunk() -> None:
    server = HTTPServer()
    release = [anyio.Event() for _ in range(3)]

    async def stream_handler(request: HTTPRequest, response: HTTPResponse) -> None:
        await response.start(200, [("content-type", "application/javascript")])
        for i in range(3):
            await response.write(f"chunk{i}\n".encode())
            await release[i].wait()
        await response.end()

    server.add_route("/stream", stream_handler, methods=["POST"])
    async with serving(server) as port, HTTPClient() as client:
        with anyio.fail_after(10):
            async with client.stream("POST", f"http://127.0.0.1:{port}/stream") as response:
                assert response.status == 200
                assert response.headers.get("transfer-encoding") == "chunked"
                received = []
                async for chunk in response:
                    received.append(chunk)
                    # The next chunk is only written after we saw this one.
                    release[len(received) - 1].set()
        assert received == [b"chunk0\n", b"chunk1\n", b"chunk2\n"]


async def test_long_poll_handler_notices_client_disconnect() -> None:
    server = HTTPServer()
    noticed = anyio.Event()
    entered = anyio.Event()

    async def long_poll(request: HTTPRequest, response: HTTPResponse) -> None:
        entered.set()
        await response.disconnected.wait()
        noticed.set()

    server.add_route("/poll", long_poll)
    async with serving(server) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        with anyio.fail_after(5):
            await entered.wait()
            await stream.aclose()
            await noticed.wait()


async def test_failing_handler_gets_500_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = HTTPServer()

    async def broken(request: HTTPRequest, response: HTTPResponse) -> None:
        raise ValueError("boom")

    async def silent(request: HTTPRequest, response: HTTPResponse) -> None:
        pass

    server.add_route("/broken", broken)
    server.add_route("/silent", silent)
    server.add_route("/echo", echo_handler)
    with caplog.at_level(logging.ERROR, logger="kitecore.http.server"):
        async with serving(server) as port, HTTPClient() as client:
            base = f"http://127.0.0.1:{port}"
            assert (await client.request("GET", base + "/broken")).status == 500
            assert (await client.request("GET", base + "/silent")).status == 500
            assert (await client.request("GET", base + "/echo")).status == 200
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


async def test_cookie_jar_sends_cookies_back() -> None:
    server = HTTPServer()
    seen: list[str | None] = []

    async def cookie(request: HTTPRequest, response: HTTPResponse) -> None:
        seen.append(request.headers.get("cookie"))
        await response.send(200, [("set-cookie", "JSESSIONID=abc; Path=/")], b"")

    server.add_route("/c", cookie)
    async with serving(server) as port, HTTPClient() as client:
        await client.request("GET", f"http://127.0.0.1:{port}/c")
        await client.request("GET", f"http://127.0.0.1:{port}/c")
        assert client.cookies == {"127.0.0.1": {"JSESSIONID": "abc"}}
    assert seen == [None, "JSESSIONID=abc"]


async def test_client_retries_when_the_server_closed_an_idle_connection() -> None:
    async with serving(make_server(idle_timeout=0.1)) as port, HTTPClient() as client:
        url = f"http://127.0.0.1:{port}/echo"
        assert (await client.request("GET", url)).status == 200
        await anyio.sleep(0.3)  # the server drops the idle keep-alive connection
        assert (await client.request("GET", url)).status == 200


async def test_client_errors_are_clear() -> None:
    async with HTTPClient(timeout=5) as client:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        with pytest.raises(OSError):
            await client.request("GET", f"http://127.0.0.1:{port}/")
        with pytest.raises(ValueError):
            await client.request("GET", "ftp://127.0.0.1/")


async def test_expect_100_continue_is_answered() -> None:
    async with serving(make_server()) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        with anyio.fail_after(5):
            interim = await stream.receive()
            assert interim.startswith(b"HTTP/1.1 100 ")
            await stream.send(b"ok")
            head, body = await read_http_response(
                stream, bytearray(interim.partition(b"\r\n\r\n")[2])
            )
        assert head.startswith(b"HTTP/1.1 200 ") and body.endswith(b"b'ok'")


async def test_start_soon_runs_tasks_while_serving_only() -> None:
    server = HTTPServer()
    ran = anyio.Event()

    async def task(event: anyio.Event) -> None:
        event.set()

    async def failing() -> None:
        raise RuntimeError("logged, not raised")

    with pytest.raises(ConnectionRefusedError):
        server.start_soon(task, ran)
    async with serving(server):
        assert server.serving
        server.start_soon(failing)
        server.start_soon(task, ran)
        with anyio.fail_after(5):
            await ran.wait()
    assert not server.serving
    with pytest.raises(ConnectionRefusedError):
        server.start_soon(task, ran)
