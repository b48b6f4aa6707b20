"""The SockJS session state machine (sans-IO: no clocks, no sockets, no tasks).

Rules this module keeps:

* A session goes ``CONNECTING -> OPEN -> CLOSING -> CLOSED`` (``CLOSING`` may be skipped). The
  first receiver to attach gets the ``o`` frame and opens the session.
* At most one *receiver* (a receiving HTTP request or a websocket) is attached at a time. A
  second one gets ``c[2010,"Another connection still open"]`` and must end; the session is not
  disturbed.
* Outgoing messages queue in the session until a receiver takes them; they leave as one
  ``a[...]`` frame per flush, in order. Nothing queued is lost when a polling response ends.
* A receiver ends when its transport says so: polling ones after one frame, streaming ones once
  ``response_limit`` bytes of wrapped frames were written (the prelude does not count), any one
  right after a close frame. The session outlives its receivers.
* While a receiver is attached and nothing was written for ``heartbeat_delay``, a flush writes
  ``h``. While none is attached the session expires ``disconnect_delay`` after the last one left
  (or after creation); expired sessions become ``CLOSED`` and drop their queue.
* :meth:`Session.close` remembers the close frame; every later receiver gets it (after any
  queued messages) until the session expires.
* A receiver that is *interrupted* (the client vanished mid-response) closes the session at
  once with ``1002 "Connection interrupted"``.

Every method takes ``now`` (any monotonic clock, seconds) from the caller. Outputs are
:class:`Output` values: text chunks to write, each as its own write/flush (HTTP chunk or
websocket message), and whether the response must end afterwards.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from .config import SockJSConfig
from .errors import SessionUsageError
from .frames import (
    ANOTHER_CONNECTION_FRAME,
    HEARTBEAT_FRAME,
    OPEN_FRAME,
    close_frame,
    message_frame,
)
from .framing import Framing

__all__ = ["Output", "Receiver", "Session", "SessionState", "SessionTable"]

logger = logging.getLogger(__name__)

#: The close code and reason a session gets when its receiver is interrupted.
INTERRUPTED = (1002, "Connection interrupted")


class SessionState(enum.Enum):
    """Life cycle of a :class:`Session`."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Output:
    """What the I/O layer must do for a receiver: write ``chunks`` in order, each on its own
    (one HTTP chunk or one websocket message), then finish the response if ``end``."""

    chunks: tuple[str, ...] = ()
    end: bool = False


@dataclass(eq=False, slots=True)
class Receiver:
    """One receiving connection: its framing and how many bytes it has written so far.

    Create one per receiving request (or websocket) and pass it to :meth:`Session.attach`.
    """

    framing: Framing
    response_limit: int = 128 * 1024
    bytes_sent: int = field(default=0, init=False)
    frames_sent: int = field(default=0, init=False)

    @property
    def exhausted(self) -> bool:
        """Whether this receiver must not carry more frames."""
        if not self.framing.streaming:
            return self.frames_sent > 0
        return self.framing.limited and self.bytes_sent >= self.response_limit

    def _emit(self, frame: str) -> str:
        wire = self.framing.wrap(frame)
        self.frames_sent += 1
        self.bytes_sent += len(wire.encode("utf-8"))
        return wire


class Session:
    """One SockJS session. See the module docstring for the rules it keeps.

    ``session_id`` is ``None`` for websocket sessions, which are never looked up by id.
    """

    def __init__(self, session_id: str | None, config: SockJSConfig, now: float) -> None:
        self.session_id = session_id
        self.config = config
        self.state = SessionState.CONNECTING
        self.close_code: int | None = None
        self.close_reason = ""
        self._queue: list[str] = []
        self._receiver: Receiver | None = None
        self._last_write = now
        self._expires_at: float | None = now + config.disconnect_delay

    def __repr__(self) -> str:
        return f"<Session {self.session_id!r} {self.state.value}>"

    # -- application side -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether messages from the client are to be delivered to the application."""
        return self.state is SessionState.OPEN

    @property
    def receiver(self) -> Receiver | None:
        """The attached receiver, if any."""
        return self._receiver

    @property
    def pending(self) -> int:
        """Number of queued outgoing messages."""
        return len(self._queue)

    def send(self, *messages: str) -> None:
        """Queue messages for the client. The I/O layer should then wake the attached receiver
        (if any) and :meth:`flush` it."""
        if self.state not in (SessionState.CONNECTING, SessionState.OPEN):
            raise SessionUsageError(f"cannot send on a {self.state.value} session")
        self._queue.extend(messages)

    def close(self, code: int = 3000, reason: str = "Go away!") -> bool:
        """Start closing; returns False if the session was already closing or closed.

        The attached receiver (if any) gets the close frame at its next :meth:`flush`.
        """
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return False
        self.state = SessionState.CLOSING
        self.close_code, self.close_reason = code, reason
        logger.debug("session %s closing: %d %s", self.session_id, code, reason)
        return True

    # -- receiver side ------------------------------------------------------------------------

    def attach(self, receiver: Receiver, now: float) -> Output:
        """A receiving request arrived. Returns the prelude and the frames to write now.

        If ``end`` is False the receiver is attached: wait until woken or until
        :attr:`deadline`, then call :meth:`flush`. If ``end`` is True it is not attached.
        """
        if receiver is self._receiver:
            raise SessionUsageError("receiver is already attached")
        chunks = [receiver.framing.prelude] if receiver.framing.prelude else []
        if self._receiver is not None:
            chunks.append(receiver._emit(ANOTHER_CONNECTION_FRAME))
            return Output(tuple(chunks), end=True)
        if self.state is SessionState.CLOSED:
            chunks.append(receiver._emit(self._close_frame()))
            return Output(tuple(chunks), end=True)
        if self.state is SessionState.CONNECTING:
            chunks.append(receiver._emit(OPEN_FRAME))
            self.state = SessionState.OPEN
            logger.debug("session %s open", self.session_id)
        self._receiver = receiver
        self._expires_at = None
        self._last_write = now
        return self._deliver(receiver, chunks, now)

    def flush(self, receiver: Receiver, now: float) -> Output:
        """Write what is due for ``receiver``: queued messages, the close frame, or a heartbeat
        if nothing was written for ``heartbeat_delay``. A receiver that is no longer attached
        gets ``Output(end=True)``."""
        if receiver is not self._receiver:
            return Output(end=True)
        chunks: list[str] = []
        if not self._queue and self.state is not SessionState.CLOSING:
            if now - self._last_write >= self.config.heartbeat_delay:
                chunks.append(receiver._emit(HEARTBEAT_FRAME))
                self._last_write = now
                if receiver.exhausted:
                    self._release(now)
                    return Output(tuple(chunks), end=True)
            return Output(tuple(chunks))
        return self._deliver(receiver, chunks, now)

    def detach(self, receiver: Receiver, now: float, *, interrupted: bool = False) -> None:
        """The receiving connection went away before the session ended it.

        ``interrupted`` means the client vanished (network error, websocket closed): the
        session is then closed at once. Detaching a receiver that is not attached does nothing.
        """
        if receiver is not self._receiver:
            return
        self._release(now)
        if interrupted and self.state is not SessionState.CLOSED:
            if self.close_code is None:
                self.close_code, self.close_reason = INTERRUPTED
            self._finish()
            logger.debug("session %s interrupted", self.session_id)

    # -- time -------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When the caller must act next: flush the attached receiver (heartbeat), or check
        :meth:`expire`. ``None`` once closed."""
        if self.state is SessionState.CLOSED:
            return None
        if self._receiver is not None:
            return self._last_write + self.config.heartbeat_delay
        return self._expires_at

    def expire(self, now: float) -> bool:
        """Close the session for good if no receiver came back in time; True if it is CLOSED."""
        if self.state is SessionState.CLOSED:
            return True
        if self._receiver is None and self._expires_at is not None and now >= self._expires_at:
            self._finish()
            logger.debug("session %s expired", self.session_id)
            return True
        return False

    # -- internals --------------------------------------------------------------------------

    def _close_frame(self) -> str:
        code = 3000 if self.close_code is None else self.close_code
        return close_frame(code, self.close_reason or "Go away!")

    def _deliver(self, receiver: Receiver, chunks: list[str], now: float) -> Output:
        """Append queued messages and (when closing) the close frame while the receiver may
        carry more; end and detach it when it may not."""
        if self._queue and not receiver.exhausted:
            chunks.append(receiver._emit(message_frame(self._queue)))
            self._queue.clear()
            self._last_write = now
        if self.state is SessionState.CLOSING and not receiver.exhausted:
            chunks.append(receiver._emit(self._close_frame()))
            self._release(now)
            return Output(tuple(chunks), end=True)
        if receiver.exhausted:
            self._release(now)
            return Output(tuple(chunks), end=True)
        return Output(tuple(chunks))

    def _release(self, now: float) -> None:
        self._receiver = None
        self._expires_at = now + self.config.disconnect_delay

    def _finish(self) -> None:
        self.state = SessionState.CLOSED
        self._queue.clear()
        self._receiver = None
        self._expires_at = None


class SessionTable:
    """Sessions of one SockJS service by session id (the server id is ignored, as the
    protocol requires). Websocket sessions are not kept here."""

    def __init__(self, config: SockJSConfig) -> None:
        self.config = config
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, if any (``*_send`` requests use this: None -> 404)."""
        session = self._sessions.get(session_id)
        if session is not None and session.state is SessionState.CLOSED:
            return None
        return session

    def get_or_create(self, session_id: str, now: float) -> tuple[Session, bool]:
        """The session for a receiving request; True if it was created just now (a CLOSED
        session under the same id is replaced)."""
        session = self.get(session_id)
        if session is not None:
            return session, False
        session = Session(session_id, self.config, now)
        self._sessions[session_id] = session
        return session, True

    def remove(self, session: Session) -> None:
        """Forget ``session`` (no-op if it is not the one stored under its id)."""
        if session.session_id is not None and self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]

    def reap(self, now: float) -> list[Session]:
        """Remove and return every session that is closed or expired at ``now``."""
        gone = [s for s in self._sessions.values() if s.expire(now)]
        for session in gone:
            self.remove(session)
        return gone

    def next_expiry(self) -> float | None:
        """The earliest time a session without a receiver may expire (for the reaper task)."""
        times = [
            s.deadline
            for s in self._sessions.values()
            if s.receiver is None and s.deadline is not None
        ]
        return min(times, default=None)
