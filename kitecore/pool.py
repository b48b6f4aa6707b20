"""A kite pool: "call any kite matching this query", with a pluggable picker and failover.

>>> pool = kite.pool(Query(username="alice", environment="production", name="math"))
>>> await pool.tell("square", 4)                       # one matching kite answers
>>> await pool.tell("square", 4, idempotent=True)      # retried on another kite if one fails

The pool asks Kontrol for the matching kites (when it starts, every ``refresh_interval``
seconds, and soon after a kite fails) and, with ``watch=True`` (the default), follows a registry
watch (:mod:`kitecore.discovery.watch`) so that arrivals and departures reach it at once; a
Kontrol without watches (Go's) leaves it to the polling. It keeps one connection per kite open
and reuses it, and lets its :class:`~kitecore.pickers.Picker` choose the kite for each call.
After every call the picker hears how long it took and how it ended. A kite whose connection
drops or cannot be dialed is taken out of the rotation and redialed in the background with
backoff; it comes back when a dial succeeds, and goes for good when Kontrol stops listing it.

Retries: a call marked idempotent (per call or for the whole pool) that ends in a disconnect,
a timeout or a send error is made again on another kite, at most ``attempts`` times in all,
with a short backoff between attempts. Other calls raise those errors to the caller at once;
errors the remote method returns are never retried. A kite that cannot be dialed was never
sent the call, so the pool moves on to another kite for any call (within ``attempts``).

The per-call path does no Kontrol round trip and starts no task: a pick, the client's
``tell`` and two clock readings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from kitecore.backoff import Backoff
from kitecore.client import DEFAULT_TIMEOUT, Client, DialError
from kitecore.discovery.messages import NoKitesError, to_query
from kitecore.discovery.watch import DEREGISTER, REGISTER
from kitecore.pickers import BUILTIN_PICKERS, PLUGIN_PICKERS, Candidate, Picker, is_failure
from kitecore.protocol.errors import DisconnectError, KiteError, SendError, ShuttingDownError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.taskgroups import OwnedTaskGroup

if TYPE_CHECKING:
    from kitecore.kite import Kite
    from kitecore.plugins import PluginRegistry

__all__ = ["AllKitesFailedError", "Pool", "make_picker"]

logger = logging.getLogger(__name__)

#: The picker a pool uses unless told otherwise.
DEFAULT_PICKER = "round_robin"
#: A refresh after a failure waits at least this long after the previous refresh.
MIN_REFRESH_GAP = 0.2
#: The errors that take a kite out of the rotation (it is gone, unreachable or leaving).
_OUT_OF_ROTATION = (DisconnectError, SendError, ShuttingDownError)

QueryLike = Query | KiteIdentity | Mapping[str, str] | str | None


class AllKitesFailedError(SendError):
    """No kite matching the pool's query could take the call: every candidate is unreachable,
    or every attempt failed."""


def make_picker(
    plugins: PluginRegistry, picker: str | Picker, options: Mapping[str, Any] | None = None
) -> Picker:
    """The picker ``picker`` names, built by its plugin's factory with ``options`` (or by the
    core's, :data:`~kitecore.pickers.BUILTIN_PICKERS`, when no plugin registers the name); a
    picker object is returned as it is. An unknown name raises
    :class:`~kitecore.plugins.PluginError` listing the available pickers."""
    if isinstance(picker, str):
        built = _picker_factory(plugins, picker)(**dict(options or {}))
        if not isinstance(built, Picker):
            raise TypeError(
                f"picker {picker!r} built {built!r}, which lacks pick/observe/update/run"
            )
        return built
    if options:
        raise TypeError("picker_options only apply to a picker given by name")
    if not isinstance(picker, Picker):
        raise TypeError(f"{picker!r} is not a picker (it needs pick, observe, update and run)")
    return picker


def _picker_factory(plugins: PluginRegistry, name: str) -> Callable[..., Any]:
    """The factory of the picker ``name``: a plugin's, else the core's built-in one."""
    from kitecore.plugins import PluginError

    if name in plugins.pickers or name not in BUILTIN_PICKERS:
        try:
            return plugins.picker(name)
        except PluginError:
            available = ", ".join(sorted({*plugins.pickers, *BUILTIN_PICKERS}))
            hint = ""
            if name in PLUGIN_PICKERS:
                dist = PLUGIN_PICKERS[name]
                hint = f" ({name} comes with {dist}: pip install ./plugins/{dist} in a checkout)"
            raise PluginError(
                f"unknown picker {name!r}; installed pickers: {available}{hint}"
            ) from None
    return BUILTIN_PICKERS[name]


class _State:
    """What the pool knows about one candidate beyond the picker's view."""

    __slots__ = ("backoff", "down", "last_error", "lock", "retry_at")

    def __init__(self, backoff: Backoff) -> None:
        self.down = False
        self.retry_at = 0.0
        self.last_error: BaseException | None = None
        self.backoff = backoff
        self.lock: anyio.Lock | None = None


class Pool:
    """Calls one of the kites matching ``query``, chosen by ``picker``.

    ``picker`` is a registered picker name (``random``, ``round_robin``, ``fastest``,
    ``least_latency``; built with ``picker_options``) or a :class:`~kitecore.pickers.Picker`.
    ``idempotent`` is the default of :meth:`tell`'s flag; ``attempts`` bounds the kites one
    call is tried on. ``refresh_interval`` is how often Kontrol is asked again (``watch``
    follows Kontrol's registry watch in between, when Kontrol offers one);
    ``retry_backoff`` spaces the attempts of one call and ``redial_backoff`` the redials of
    a lost kite.

    Use it as ``async with kite.pool(...) as pool:``, or inside a running kite just call
    :meth:`tell` (the pool starts on first use and lives in the kite's task group; close it
    with :meth:`aclose`).
    """

    def __init__(
        self,
        kite: Kite,
        query: QueryLike = None,
        *,
        picker: str | Picker = DEFAULT_PICKER,
        picker_options: Mapping[str, Any] | None = None,
        idempotent: bool = False,
        attempts: int = 3,
        refresh_interval: float = 30.0,
        retry_backoff: Backoff | None = None,
        redial_backoff: Backoff | None = None,
        watch: bool = True,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        if not refresh_interval > 0:
            raise ValueError(f"refresh_interval must be positive, not {refresh_interval}")
        self.kite = kite
        self.query = Query.from_path(query) if isinstance(query, str) else to_query(query)
        self.picker = make_picker(kite.plugins, picker, picker_options)
        self.idempotent = idempotent
        self.attempts = attempts
        self.refresh_interval = refresh_interval
        self.watch = watch
        #: True while the pool follows a watch Kontrol pushes (False: polling only).
        self.watching = False
        self._retry_backoff = retry_backoff or Backoff(
            initial=0.02, multiplier=2.0, randomization=0.5, maximum=1.0
        )
        self._redial_backoff = redial_backoff or Backoff(
            initial=0.1, multiplier=2.0, randomization=0.5, maximum=5.0
        )
        self._candidates: dict[str, Candidate] = {}
        self._states: dict[Candidate, _State] = {}
        self._live: list[Candidate] = []
        self._started = False
        self._closed = False
        self._own_tasks = OwnedTaskGroup()
        self._group: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._start_lock_: anyio.Lock | None = None
        self._refresh_lock_: anyio.Lock | None = None
        self._wake_: anyio.Event | None = None
        self._refresh_wanted = False
        self._last_refresh = -math.inf
        self._last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Pool {self.query} {len(self._live)}/{len(self._candidates)} live>"

    # ------------------------------------------------------------ state

    @property
    def candidates(self) -> list[Candidate]:
        """Every kite Kontrol listed for the query, reachable or not."""
        return list(self._candidates.values())

    @property
    def live(self) -> Sequence[Candidate]:
        """The candidates believed reachable (what the picker chooses from)."""
        return self._live

    def is_down(self, candidate: Candidate) -> bool:
        """True while ``candidate`` is out of the rotation (lost, or its dial failed)."""
        state = self._states.get(candidate)
        return state is None or state.down

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Pool:
        await self._own_tasks.open()
        try:
            await self.start()
        except BaseException:
            await self._own_tasks.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        await self._own_tasks.aclose()

    async def start(self) -> None:
        """Ask Kontrol for the kites and start the background work. Called by the first
        :meth:`tell`; raises :class:`~kitecore.discovery.NoKitesError` if none match."""
        if self._start_lock_ is None:
            self._start_lock_ = anyio.Lock()
        async with self._start_lock_:
            if self._started:
                return
            if self._closed:
                raise SendError("can't send, the pool is closed")
            group = self._own_tasks.group or self.kite._tasks.group
            if group is None:
                raise RuntimeError(
                    "a pool needs a running kite ('async with kite') or its own context "
                    "('async with kite.pool(...)')"
                )
            self._group = group
            await self.refresh()
            if not self._candidates:
                raise NoKitesError(f"no kites found matching {self.query}")
            self._scope = anyio.CancelScope()
            group.start_soon(self._background, self._scope)
            self._started = True

    async def aclose(self) -> None:
        """Stop the background work and close every connection. Idempotent."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
        candidates = list(self._candidates.values())
        self._candidates.clear()
        self._states.clear()
        self._live = []
        with anyio.CancelScope(shield=True):
            for candidate in candidates:
                await candidate.client.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`, kept for existing callers."""
        await self.aclose()

    async def _background(self, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as group:
                group.start_soon(self._run_picker)
                if self.watch:
                    group.start_soon(self._follow_watch)
                await self._maintain(group)

    async def _run_picker(self) -> None:
        try:
            await self.picker.run(self)
        except Exception:
            logger.exception("%r: picker %r failed in its background task", self, self.picker)

    # ------------------------------------------------------------ calling

    async def tell(
        self,
        method: str,
        *args: Any,
        idempotent: bool | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> Any:
        """Call ``method`` with ``args`` on one kite matching the query; return its result.

        ``idempotent`` (default: the pool's) allows the call to be made again on another kite
        after a disconnect, timeout or send error. A call that was never run (its kite could not
        be dialed, or answered :class:`~kitecore.ShuttingDownError`) goes to another kite
        whatever ``idempotent`` says. ``timeout`` is per attempt (default: the
        kite's ``config.timeout``). Raises the remote method's errors as they come,
        :class:`~kitecore.discovery.NoKitesError` when Kontrol lists no matching kite, and
        :class:`AllKitesFailedError` when no kite could take the call in ``attempts`` tries.
        """
        if not self._started:
            await self.start()
        retry = self.idempotent if idempotent is None else idempotent
        picker = self.picker
        tried: list[Candidate] = []
        backoff: Backoff | None = None
        while True:
            live = self._live
            if tried:
                live = [c for c in live if c not in tried] or live
            candidate = picker.pick(live) if live else await self._pick_after_recovery(tried)
            client = candidate.client
            if not client.connected:
                try:
                    client = await self._connect(candidate)
                except DialError as exc:
                    # the call was never sent: any call may go to another kite
                    picker.observe(candidate, 0.0, exc)
                    tried.append(candidate)
                    if len(tried) >= self.attempts:
                        raise self._exhausted(method, tried, exc) from exc
                    continue
            start = time.perf_counter()
            try:
                result = await client.tell(method, *args, timeout=timeout)
            except KiteError as exc:
                picker.observe(candidate, time.perf_counter() - start, exc)
                if not is_failure(exc):
                    raise
                self._failed(candidate, exc)
                tried.append(candidate)
                if not retry and not isinstance(exc, ShuttingDownError):
                    raise
                if len(tried) >= self.attempts:
                    raise self._exhausted(method, tried, exc) from exc
                backoff = backoff or self._new_retry_backoff()
                delay = backoff.next()
                logger.info(
                    "%r: %s on %r failed (%s); trying another kite in %.3fs",
                    self,
                    method,
                    candidate,
                    exc,
                    delay,
                )
                await anyio.sleep(delay)
                continue
            picker.observe(candidate, time.perf_counter() - start, None)
            return result

    def _new_retry_backoff(self) -> Backoff:
        b = self._retry_backoff
        return Backoff(
            initial=b.initial,
            multiplier=b.multiplier,
            randomization=b.randomization,
            maximum=b.maximum,
        )

    def _exhausted(
        self, method: str, tried: list[Candidate], error: BaseException
    ) -> AllKitesFailedError:
        kites = ", ".join(dict.fromkeys(c.url for c in tried))
        return AllKitesFailedError(
            f'"{method}" failed on {len(tried)} attempt(s) at kites matching {self.query} '
            f"({kites}); last error: {error}"
        )

    async def _pick_after_recovery(self, tried: list[Candidate]) -> Candidate:
        """No candidate is live: ask Kontrol again and redial the known kites once, then
        pick, or raise (``no kites found``, or every candidate unreachable)."""
        live = await self._recover()
        untried = [c for c in live if c not in tried]
        return self.picker.pick(untried or live)

    async def _recover(self) -> Sequence[Candidate]:
        if self._refresh_lock_ is None:
            self._refresh_lock_ = anyio.Lock()
        async with self._refresh_lock_:
            if self._closed:
                raise SendError("can't send, the pool is closed")
            if self._live:
                return self._live
            recent = time.monotonic() - self._last_refresh < MIN_REFRESH_GAP
            if not recent:
                await self._refresh_locked()
                async with anyio.create_task_group() as group:
                    for candidate in list(self._candidates.values()):
                        if self.is_down(candidate):
                            group.start_soon(self._redial, candidate)
            if self._live:
                return self._live
            if not self._candidates:
                raise NoKitesError(f"no kites found matching {self.query}")
            raise AllKitesFailedError(
                f"every kite matching {self.query} is unreachable "
                f"({len(self._candidates)} known); last error: {self._last_error}"
            )

    # ------------------------------------------------------------ connections

    async def _connect(self, candidate: Candidate) -> Client:
        """The candidate's client, dialed (once, however many calls want it now)."""
        client = candidate.client
        state = self._states.get(candidate)
        if state is None:
            raise DialError(f"{candidate!r} has left the pool")
        if state.lock is None:
            state.lock = anyio.Lock()
        async with state.lock:
            if client.connected:
                return client
            try:
                await client.dial()
            except DialError as exc:
                self._failed(candidate, exc)
                raise
        return client

    async def ping(self, candidate: Candidate, timeout: float) -> float:
        """Dial ``candidate`` if needed and time a ``kite.ping`` (for pickers that measure)."""
        client = await self._connect(candidate)
        start = time.perf_counter()
        try:
            await client.tell("kite.ping", timeout=timeout)
        except KiteError as exc:
            if isinstance(exc, _OUT_OF_ROTATION):
                self._failed(candidate, exc)
            raise
        return time.perf_counter() - start

    def _failed(self, candidate: Candidate, error: BaseException) -> None:
        """Take a lost, undialable or departing kite out of the rotation (a timeout leaves
        it in)."""
        self._last_error = error
        state = self._states.get(candidate)
        if state is None or state.down:
            return
        if not isinstance(error, _OUT_OF_ROTATION):
            return
        if candidate.client.connected and not isinstance(error, DialError | ShuttingDownError):
            # e.g. a reply lost to an old connection: the current one is fine
            return
        self._mark_down(candidate, state, error)

    def _mark_down(self, candidate: Candidate, state: _State, error: BaseException) -> None:
        state.down = True
        state.last_error = error
        state.retry_at = time.monotonic() + state.backoff.next()
        logger.info("%r: %r is out of the rotation: %s", self, candidate, error)
        self._set_live()
        self._request_refresh()

    def _on_disconnect(self, candidate: Candidate) -> Any:
        def hook(client: Client) -> None:
            if self._closed or client.connected:
                return
            state = self._states.get(candidate)
            if state is not None and not state.down:
                self._mark_down(candidate, state, DisconnectError("Remote kite has disconnected"))

        return hook

    async def _redial(self, candidate: Candidate) -> None:
        state = self._states.get(candidate)
        if state is None or not state.down:
            return
        if isinstance(state.last_error, ShuttingDownError) and candidate.client.connected:
            # still draining its calls: back only once a new connection reaches a kite there
            state.retry_at = time.monotonic() + state.backoff.next()
            self._poke()
            return
        try:
            await self._connect(candidate)
        except DialError as exc:
            logger.debug("%r: redialing %r failed: %s", self, candidate, exc)
            state.last_error = exc
            state.retry_at = time.monotonic() + state.backoff.next()
            self._poke()
            return
        if self._states.get(candidate) is state and state.down:
            state.down = False
            state.backoff.reset()
            logger.info("%r: %r is back", self, candidate)
            self._set_live()

    def _set_live(self) -> None:
        self._live = [c for c in self._candidates.values() if not self._states[c].down]
        self.picker.update(self._live)

    # ------------------------------------------------------------ discovery

    async def refresh(self) -> None:
        """Ask Kontrol for the matching kites now: add new ones, drop those it no longer
        lists. Kontrol's errors (other than ``no kites found``) propagate."""
        if self._refresh_lock_ is None:
            self._refresh_lock_ = anyio.Lock()
        async with self._refresh_lock_:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        self._last_refresh = time.monotonic()
        self._refresh_wanted = False
        try:
            found = await self.kite.get_kites(self.query)
        except NoKitesError:
            found = []
        listed: dict[str, Client] = {}
        for client in found:
            if client.remote_kite is not None:
                listed[client.remote_kite.id] = client
        gone = [
            c
            for key, c in self._candidates.items()
            if key not in listed or (listed[key].url != c.url)
        ]
        self._drop(gone)
        for client in listed.values():
            self._add(client)
        self._set_live()
        with anyio.CancelScope(shield=True):
            for candidate in gone:
                await candidate.client.aclose()

    def _add(self, client: Client) -> None:
        """A kite Kontrol lists (a no-op for one already known)."""
        assert client.remote_kite is not None and client.url is not None
        key = client.remote_kite.id
        if key in self._candidates:
            return
        candidate = Candidate(client.remote_kite, client.url, client)
        client._own_task_group = self._group  # its connection lives as long as the pool
        client.on_disconnect(self._on_disconnect(candidate))
        self._candidates[key] = candidate
        self._states[candidate] = _State(self._new_redial_backoff())

    def _drop(self, gone: Sequence[Candidate]) -> None:
        """Forget kites Kontrol no longer lists (the caller closes their clients)."""
        for candidate in gone:
            if self._candidates.get(candidate.key) is candidate:
                del self._candidates[candidate.key]
            self._states.pop(candidate, None)
            logger.info("%r: %r is no longer listed by Kontrol", self, candidate)

    async def _follow_watch(self) -> None:
        """Apply the registry watch's events as they come (pushed watches only). A watch that
        cannot start is tried again (the polling covers the gap); once started, the watch
        resubscribes by itself after lost connections."""
        backoff = Backoff(initial=0.5, multiplier=2.0, randomization=0.3, maximum=30.0)
        while True:
            delay = backoff.initial
            try:
                if not await self._watch_once():
                    return  # Kontrol offers no watch: the polling does it all
            except (KiteError, OSError, ValueError) as exc:
                delay = min(backoff.next(), self.refresh_interval)
                logger.warning("%r: registry watch failed (%s); again in %.1fs", self, exc, delay)
            finally:
                self.watching = False
            await anyio.sleep(delay)

    async def _watch_once(self) -> bool:
        """Follow one watch until it ends; False when Kontrol has no watches (Go's)."""
        async with self.kite.kontrol_client.watch_kites(
            self.query, poll_interval=self.refresh_interval
        ) as watch:
            if not watch.pushed:
                logger.info("%r: Kontrol offers no watch; polling", self)
                return False
            self.watching = True
            # kites that left between the pool's first answer and the watch's
            stale = [c for key, c in self._candidates.items() if key not in watch.known]
            await self._apply(stale, None)
            async for event in watch:
                known = self._candidates.get(event.kite.id)
                if event.action == REGISTER and event.client is not None:
                    stale = [known] if known is not None and known.url != event.url else []
                    await self._apply(stale, event.client)
                elif event.action == DEREGISTER and known is not None:
                    await self._apply([known], None)
        return True

    async def _apply(self, gone: Sequence[Candidate], new: Client | None) -> None:
        self._drop(gone)
        if new is not None:
            self._add(new)
        self._set_live()
        with anyio.CancelScope(shield=True):
            for candidate in gone:
                await candidate.client.aclose()

    def _new_redial_backoff(self) -> Backoff:
        b = self._redial_backoff
        return Backoff(
            initial=b.initial,
            multiplier=b.multiplier,
            randomization=b.randomization,
            maximum=b.maximum,
        )

    def _request_refresh(self) -> None:
        self._refresh_wanted = True
        self._poke()

    def _poke(self) -> None:
        """Wake the maintenance loop to reconsider what is due."""
        if self._wake_ is not None:
            self._wake_.set()

    async def _maintain(self, group: TaskGroup) -> None:
        """Refresh from Kontrol periodically and after failures; redial lost kites."""
        while True:
            now = time.monotonic()
            due = self._last_refresh + self.refresh_interval
            if self._refresh_wanted:
                due = min(due, self._last_refresh + MIN_REFRESH_GAP)
            for state in self._states.values():
                if state.down:
                    due = min(due, state.retry_at)
            if due > now:
                self._wake_ = anyio.Event()
                with anyio.move_on_after(due - now):
                    await self._wake_.wait()
                self._wake_ = None
                continue
            if now - self._last_refresh >= self.refresh_interval or (
                self._refresh_wanted and now - self._last_refresh >= MIN_REFRESH_GAP
            ):
                try:
                    await self.refresh()
                except Exception as exc:
                    logger.warning("%r: asking Kontrol for kites failed: %s", self, exc)
            now = time.monotonic()
            for candidate, state in list(self._states.items()):
                if state.down and state.retry_at <= now:
                    state.retry_at = math.inf  # until this redial ends
                    group.start_soon(self._redial, candidate)
