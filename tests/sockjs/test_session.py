"""The session state machine, driven the way the I/O layer will drive it (time passed in)."""

from __future__ import annotations

import pytest
from kite_transport_sockjs import (
    Framing,
    Output,
    Receiver,
    Session,
    SessionState,
    SessionTable,
    SessionUsageError,
    SockJSConfig,
    Transport,
)

CONFIG = SockJSConfig(heartbeat_delay=10.0, disconnect_delay=10.0)
TEST_APP = SockJSConfig(response_limit=4096)  # what the conformance app uses
GO_AWAY = 'c[3000,"Go away!"]'
BUSY = 'c[2010,"Another connection still open"]'


def receiver(
    transport: Transport = Transport.XHR, callback: str = "", limit: int = 4096
) -> Receiver:
    return Receiver(Framing(transport, callback), limit)


def poll(session: Session, now: float = 0.0) -> Output:
    """One xhr poll that the session answers at once (or leaves attached)."""
    return session.attach(receiver(), now)


def body(out: Output) -> str:
    return "".join(out.chunks)


def open_session(config: SockJSConfig = CONFIG) -> Session:
    session = Session("sid", config, 0.0)
    assert poll(session) == Output(("o\n",), end=True)
    return session


# -- xhr polling ------------------------------------------------------------------------------


def test_first_poll_opens_then_messages_come_back() -> None:
    session = Session("sid", CONFIG, 0.0)
    assert session.state is SessionState.CONNECTING
    assert poll(session) == Output(("o\n",), end=True)
    assert session.is_open and session.receiver is None
    session.send("a")
    assert poll(session, 1.0) == Output(('a["a"]\n',), end=True)


def test_several_messages_share_one_frame() -> None:
    session = open_session()
    session.send("a")
    session.send("b", "c")
    assert body(poll(session)) == 'a["a","b","c"]\n'
    assert session.pending == 0


def test_poll_waits_when_nothing_is_queued_and_gets_woken() -> None:
    session = open_session()
    recv = receiver()
    assert session.attach(recv, 1.0) == Output((), end=False)
    assert session.receiver is recv
    session.send("x")
    assert session.flush(recv, 1.5) == Output(('a["x"]\n',), end=True)
    assert session.receiver is None


def test_second_receiver_gets_2010_and_the_first_stays() -> None:
    session = open_session()
    first = receiver()
    assert not session.attach(first, 1.0).end
    assert poll(session, 1.1) == Output((BUSY + "\n",), end=True)
    assert session.receiver is first
    session.send("still mine")
    assert body(session.flush(first, 1.2)) == 'a["still mine"]\n'


def test_same_receiver_cannot_attach_twice() -> None:
    session = open_session()
    recv = receiver()
    session.attach(recv, 1.0)
    with pytest.raises(SessionUsageError):
        session.attach(recv, 1.0)


def test_flush_of_a_detached_receiver_just_ends() -> None:
    session = open_session()
    recv = receiver()
    session.attach(recv, 1.0)
    session.detach(recv, 2.0)
    assert session.flush(recv, 3.0) == Output(end=True)


# -- closing ----------------------------------------------------------------------------------


def test_close_is_replayed_to_every_later_receiver() -> None:
    session = open_session()
    assert session.close()
    assert not session.close(1000, "again")  # the first reason sticks
    for now in (1.0, 2.0, 3.0):
        assert poll(session, now) == Output((GO_AWAY + "\n",), end=True)
    assert session.state is SessionState.CLOSING


def test_close_with_own_code_and_reason() -> None:
    session = open_session()
    session.close(4000, 'bye "now"')
    assert body(poll(session)) == 'c[4000,"bye \\"now\\""]\n'


def test_close_reaches_the_attached_streaming_receiver() -> None:
    session = Session("sid", CONFIG, 0.0)
    recv = receiver(Transport.XHR_STREAMING)
    assert session.attach(recv, 0.0) == Output(("h" * 2048 + "\n", "o\n"))
    session.close()
    assert session.flush(recv, 0.1) == Output((GO_AWAY + "\n",), end=True)
    # a new streaming request gets the prelude and the close frame, not 2010
    again = session.attach(receiver(Transport.XHR_STREAMING), 0.2)
    assert again == Output(("h" * 2048 + "\n", GO_AWAY + "\n"), end=True)


def test_queued_messages_go_out_before_the_close_frame() -> None:
    session = open_session()
    session.send("last words")
    session.close()
    assert body(poll(session)) == 'a["last words"]\n'  # a poll carries one frame
    assert body(poll(session)) == GO_AWAY + "\n"


def test_close_before_open_sends_close_without_open() -> None:
    session = Session("sid", CONFIG, 0.0)
    session.close()
    assert poll(session) == Output((GO_AWAY + "\n",), end=True)


def test_cannot_send_once_closing() -> None:
    session = open_session()
    session.close()
    with pytest.raises(SessionUsageError):
        session.send("late")


# -- streaming response limit -------------------------------------------------------------------


def test_xhr_streaming_ends_after_response_limit_but_session_lives() -> None:
    session = Session("sid", TEST_APP, 0.0)
    recv = Receiver(Framing(Transport.XHR_STREAMING), TEST_APP.response_limit)
    assert session.attach(recv, 0.0).chunks[1] == "o\n"
    msg = "x" * 128
    for i in range(31):
        session.send(msg)
        out = session.flush(recv, 1.0 + i)
        assert out.chunks == (f'a["{msg}"]\n',)
        assert out.end is (i == 30), i  # 2 + 31 * 134 bytes >= 4096 > 2 + 30 * 134
    assert session.is_open and session.receiver is None
    session.send("more")
    nxt = session.attach(Receiver(Framing(Transport.XHR_STREAMING), 4096), 40.0)
    assert nxt.chunks[1:] == ('a["more"]\n',) and not nxt.end


@pytest.mark.parametrize(
    ("transport", "callback", "expected"),
    [
        (Transport.EVENTSOURCE, "", 'data: a["{x}"]\r\n\r\n'),
        (Transport.HTMLFILE, "callback", '<script>\np("a[\\"{x}\\"]");\n</script>\r\n'),
    ],
)
def test_one_big_message_ends_other_streams(
    transport: Transport, callback: str, expected: str
) -> None:
    session = Session("sid", TEST_APP, 0.0)
    recv = receiver(transport, callback)
    out = session.attach(recv, 0.0)
    assert len(out.chunks) == 2 and not out.end  # prelude, open frame
    session.send("x" * 4096)
    assert session.flush(recv, 1.0) == Output((expected.replace("{x}", "x" * 4096),), end=True)


def test_byte_count_is_utf8_and_the_limit_is_inclusive() -> None:
    session = Session("sid", SockJSConfig(response_limit=11), 0.0)
    recv = Receiver(Framing(Transport.XHR_STREAMING), 11)
    session.attach(recv, 0.0)  # "o\n": 2 bytes
    session.send("ż")  # a["ż"]\n: 7 characters, 8 bytes -> 10 bytes in all
    assert not session.flush(recv, 0.0).end
    session.send("")  # a[""]\n: 6 bytes -> 16
    assert session.flush(recv, 0.0).end
    other = Receiver(Framing(Transport.XHR_STREAMING), 11)
    session.attach(other, 1.0)
    session.send("żżx")  # a["żżx"]\n: 9 characters but exactly 11 bytes
    assert session.flush(other, 1.0).end


def test_websocket_has_no_response_limit() -> None:
    session = Session(None, SockJSConfig(response_limit=1), 0.0)
    recv = receiver(Transport.WEBSOCKET, limit=1)
    assert session.attach(recv, 0.0) == Output(("o",))
    session.send("a")
    assert session.flush(recv, 0.0) == Output(('a["a"]',))
    session.send("b")
    assert session.flush(recv, 0.0) == Output(('a["b"]',))
    session.close()
    assert session.flush(recv, 0.0) == Output((GO_AWAY,), end=True)


def test_jsonp_polling() -> None:
    session = Session("sid", CONFIG, 0.0)
    assert session.attach(receiver(Transport.JSONP, "x"), 0.0) == Output(('/**/x("o");\r\n',), True)
    session.send("b")
    out = session.attach(receiver(Transport.JSONP, "x"), 1.0)
    assert out == Output(('/**/x("a[\\"b\\"]");\r\n',), True)


# -- heartbeats and expiry ----------------------------------------------------------------------


def test_heartbeat_after_quiet_period_on_a_stream() -> None:
    session = Session("sid", CONFIG, 0.0)
    recv = receiver(Transport.EVENTSOURCE)
    session.attach(recv, 0.0)
    assert session.deadline == 10.0
    assert session.flush(recv, 9.9) == Output()
    assert session.flush(recv, 10.0) == Output(("data: h\r\n\r\n",))
    assert session.deadline == 20.0
    session.send("m")
    session.flush(recv, 15.0)
    assert session.deadline == 25.0  # any frame restarts the heartbeat clock


def test_heartbeat_ends_a_poll() -> None:
    session = open_session()
    recv = receiver()
    session.attach(recv, 1.0)
    assert session.flush(recv, 11.0) == Output(("h\n",), end=True)
    assert session.receiver is None


def test_session_expires_after_disconnect_delay_without_receiver() -> None:
    session = open_session()  # receiver left at t=0
    assert session.deadline == 10.0
    assert not session.expire(9.9)
    assert session.expire(10.0)
    assert session.state is SessionState.CLOSED and session.deadline is None


def test_attached_receiver_holds_the_session() -> None:
    session = open_session()
    recv = receiver(Transport.XHR_STREAMING)
    session.attach(recv, 1.0)
    assert not session.expire(1000.0)
    session.detach(recv, 1000.0)
    assert session.deadline == 1010.0
    assert session.expire(1010.0)


def test_new_session_without_receiver_expires_too() -> None:
    assert Session("sid", CONFIG, 5.0).expire(15.0)


def test_expiry_drops_queued_messages() -> None:
    session = open_session()
    session.send("never read")
    assert session.expire(10.0)
    assert session.pending == 0


def test_interrupted_receiver_closes_session_at_once() -> None:
    session = open_session()
    recv = receiver(Transport.XHR_STREAMING)
    session.attach(recv, 1.0)
    session.detach(recv, 2.0, interrupted=True)
    assert session.state is SessionState.CLOSED
    assert (session.close_code, session.close_reason) == (1002, "Connection interrupted")
    assert body(poll(session)) == 'c[1002,"Connection interrupted"]\n'


def test_detaching_a_stranger_does_nothing() -> None:
    session = open_session()
    mine = receiver(Transport.XHR_STREAMING)
    session.attach(mine, 1.0)
    session.detach(receiver(), 2.0, interrupted=True)
    assert session.receiver is mine and session.is_open


# -- the table ---------------------------------------------------------------------------------


def test_table_finds_sessions_by_id_only() -> None:
    table = SessionTable(CONFIG)
    session, created = table.get_or_create("s1", 0.0)
    assert created and len(table) == 1
    assert table.get_or_create("s1", 1.0) == (session, False)
    assert table.get("s1") is session
    assert table.get("unknown") is None  # xhr_send -> 404


def test_table_reaps_expired_sessions_and_frees_them() -> None:
    table = SessionTable(CONFIG)
    a, _ = table.get_or_create("a", 0.0)
    b, _ = table.get_or_create("b", 5.0)
    assert table.next_expiry() == 10.0
    assert table.reap(9.0) == []
    assert table.reap(10.0) == [a]
    assert table.get("a") is None and list(table) == [b]
    assert table.next_expiry() == 15.0
    assert table.reap(20.0) == [b] and len(table) == 0
    assert table.next_expiry() is None


def test_table_ignores_attached_sessions_for_expiry() -> None:
    table = SessionTable(CONFIG)
    session, _ = table.get_or_create("a", 0.0)
    session.attach(receiver(Transport.XHR_STREAMING), 0.0)
    assert table.next_expiry() is None
    assert table.reap(100.0) == []


def test_closed_session_is_replaced_by_a_fresh_one() -> None:
    table = SessionTable(CONFIG)
    old, _ = table.get_or_create("a", 0.0)
    recv = receiver(Transport.XHR_STREAMING)
    old.attach(recv, 0.0)
    old.detach(recv, 1.0, interrupted=True)
    assert table.get("a") is None
    new, created = table.get_or_create("a", 2.0)
    assert created and new is not old
    assert poll(new, 2.0) == Output(("o\n",), end=True)
    table.remove(old)  # removing the stale one leaves the new one alone
    assert table.get("a") is new
