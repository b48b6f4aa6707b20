"""Which transports a kite tries for a URL, in which order (no sockets: the order only)."""

from __future__ import annotations

import pytest

from kitecore.transport import AcceptHandler, DialOptions, MessageStream
from kitecore.transports.choice import DialMemory, candidates


class Named:
    """A transport that accepts URLs of ``schemes`` (it is never dialed here)."""

    def __init__(self, name: str, priority: int, schemes: tuple[str, ...]) -> None:
        self.name = name
        self.priority = priority
        self.schemes = schemes

    def accepts(self, url: str) -> bool:
        return url.split(":", 1)[0] in self.schemes

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        raise NotImplementedError

    def mount(self, server: object, prefix: str, on_accept: AcceptHandler) -> None:
        pass


RAW = Named("websocket", 10, ("ws", "http"))
SOCKJS = Named("sockjs", 20, ("http",))
TRANSPORTS = {"websocket": RAW, "sockjs": SOCKJS}
URL = "http://h:1/kite"


def test_auto_orders_by_priority_and_a_name_picks_one() -> None:
    assert candidates(TRANSPORTS, URL, "auto") == [SOCKJS, RAW]
    assert candidates(TRANSPORTS, "ws://h:1/kite", " AUTO ") == [RAW]
    assert candidates(TRANSPORTS, URL, "websocket") == [RAW]
    with pytest.raises(ValueError, match="unknown transport 'xhr'; installed: sockjs, websocket"):
        candidates(TRANSPORTS, URL, "xhr")
    with pytest.raises(ValueError, match="no installed transport can dial 'ftp://h/kite'"):
        candidates(TRANSPORTS, "ftp://h/kite", "auto")


def test_what_worked_last_is_tried_first_for_that_url_only() -> None:
    memory = DialMemory()
    memory.remember(URL, "websocket")
    assert candidates(TRANSPORTS, URL, "auto", memory) == [RAW, SOCKJS]
    assert candidates(TRANSPORTS, "http://other:1/kite", "auto", memory) == [SOCKJS, RAW]
    assert candidates(TRANSPORTS, URL, "sockjs", memory) == [SOCKJS]  # a name is obeyed
    memory.remember(URL, "gone")  # a transport no longer installed changes nothing
    assert candidates(TRANSPORTS, URL, "auto", memory) == [SOCKJS, RAW]
    memory.forget(URL)
    assert memory.get(URL) is None


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    memory = DialMemory(size=2)
    memory.remember("a", "websocket")
    memory.remember("b", "sockjs")
    assert memory.get("a") == "websocket"  # "a" is now more recent than "b"
    memory.remember("c", "websocket")
    assert len(memory) == 2
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == ("websocket", None, "websocket")
    with pytest.raises(ValueError):
        DialMemory(size=0)
