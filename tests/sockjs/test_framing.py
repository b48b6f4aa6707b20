"""Per-transport wire framing and preludes."""

from __future__ import annotations

import pytest
from kite_transport_sockjs import Framing, Transport

HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.callback;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def test_xhr_polling() -> None:
    f = Framing(Transport.XHR)
    assert (f.prelude, f.streaming, f.limited) == ("", False, False)
    assert f.content_type == "application/javascript; charset=UTF-8"
    assert f.wrap("o") == "o\n"
    assert f.wrap('a["a"]') == 'a["a"]\n'


def test_xhr_streaming_prelude_is_2048_h() -> None:
    f = Framing(Transport.XHR_STREAMING)
    assert f.prelude == "h" * 2048 + "\n"
    assert (f.streaming, f.limited) == (True, True)
    assert f.wrap('a["x"]') == 'a["x"]\n'


def test_eventsource() -> None:
    f = Framing(Transport.EVENTSOURCE)
    assert f.content_type == "text/event-stream"
    assert f.prelude == "\r\n"
    assert f.wrap("o") == "data: o\r\n\r\n"
    assert f.wrap('a["  \\u0000\\n\\r "]') == 'data: a["  \\u0000\\n\\r "]\r\n\r\n'
    # sockjs-client decodeURI()s event data: '%' and raw line breaks are percent-encoded
    assert f.wrap('a["100%"]') == 'data: a["100%25"]\r\n\r\n'
    assert f.wrap("x\r\ny\x00") == "data: x%0D%0Ay%00\r\n\r\n"


def test_htmlfile_prelude_and_chunks() -> None:
    f = Framing(Transport.HTMLFILE, "callback")
    assert f.content_type == "text/html; charset=UTF-8"
    assert f.prelude.strip() == HTMLFILE_HEAD
    assert len(f.prelude) > 1024
    assert f.prelude.endswith("\r\n\r\n")
    assert f.wrap("o") == '<script>\np("o");\n</script>\r\n'
    assert f.wrap('a["x"]') == '<script>\np("a[\\"x\\"]");\n</script>\r\n'


def test_htmlfile_cannot_be_broken_out_of_by_a_message() -> None:
    chunk = Framing(Transport.HTMLFILE, "cb").wrap('a["</script><b>"]')
    assert chunk.count("</script>") == 1


def test_jsonp() -> None:
    f = Framing(Transport.JSONP, "x")
    assert (f.prelude, f.streaming) == ("", False)
    assert f.content_type == "application/javascript; charset=UTF-8"
    assert f.wrap("o") == '/**/x("o");\r\n'
    assert f.wrap('a["b"]') == '/**/x("a[\\"b\\"]");\r\n'
    assert f.wrap('c[3000,"Go away!"]') == '/**/x("c[3000,\\"Go away!\\"]");\r\n'


def test_websocket_sends_bare_frames_without_limit() -> None:
    f = Framing(Transport.WEBSOCKET)
    assert (f.prelude, f.streaming, f.limited, f.wrap("o")) == ("", True, False, "o")


@pytest.mark.parametrize("transport", [Transport.XHR_SEND, Transport.JSONP_SEND])
def test_send_transports_have_no_framing(transport: Transport) -> None:
    with pytest.raises(ValueError):
        Framing(transport)


@pytest.mark.parametrize("transport", [Transport.HTMLFILE, Transport.JSONP])
def test_callback_transports_need_a_callback(transport: Transport) -> None:
    with pytest.raises(ValueError):
        Framing(transport)
