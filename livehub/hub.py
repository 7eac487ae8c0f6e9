"""This process's rooms: replicas of room state, local connections, fan-out.

A :class:`RoomReplica` folds the room's log into a :class:`RoomState` in
``seq`` order (filling any gap pub/sub left from the log), and fans each event
out to its local connections, encoded once per (role, codec) audience. Each
:class:`Connection` has a bounded send queue that the hub's :class:`Flusher` writes
to its transport once per loop iteration, coalescing what has queued up into one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, Final, Protocol, TypeVar

import structlog

from livehub import metrics, polls, roomlog, welcome_bounds
from livehub import moderation as mod
from livehub import protocol as p
from livehub import room as core
from livehub.auth import Identity
from livehub.broker.base import Broker, BrokerUnavailable, Event, History
from livehub.budgets import Limits
from livehub.config import Config
from livehub.events import problem as event_problem
from livehub.programme import Programme, Session
from livehub.protocol import CloseCode, Codec, ErrorCode, Frame, ProtocolError
from livehub.roles import Role
from livehub.sequencer import (
    Action,
    Apply,
    LogRead,
    ReadGap,
    RenewEpoch,
    Reset,
    Sequencer,
    start_of,
)
from livehub.service import Call, RequestService
from livehub.single_flight import SingleFlight
from livehub.supervisor import Supervisor

log = structlog.get_logger("livehub.hub")
T = TypeVar("T")

RECENT_EVENTS: Final = 2000  # applied events kept per replica to serve `since` without I/O
MAX_BATCH_BYTES: Final = 256 * 1024  # upper bound of one coalesced frame
# Frames are coalesced only once more than this many wait: at light load every event
# and answer goes in its own frame (a poster's ``msg`` and ``ok`` are two), which is
# what simple clients expect. Sends are flushed once per loop iteration, so more wait
# only when several events came within one iteration: load. Coalescing them then cuts
# the sends (and CPU) per delivery several times (docs/benchmarks.md).
COALESCE_AFTER: Final = 2
COALESCE_LOADED: Final = 1  # the same while the process is busy (see Flusher)
# Requests whose ``id`` is an idempotency key: a repeat is answered with the first answer.
IDEMPOTENT: Final = frozenset({"post", "ask"})
JOIN_WAIT: Final = 10.0  # seconds a join waits for its room to (re)load before `unavailable`
# Events that may change a room's open reports or held posts (see metrics.OPEN_REPORTS).
_MODERATION_GAUGED: Final = frozenset({"report", "resolved", "msg", "del"})


class Greeting(Protocol):
    """A connection that has not joined a room yet (the transport's WebSocket)."""

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


class Outlet(Protocol):
    """Where a connection's frames go: livehub's WebSocket transport (livehub.transport)."""

    on_writable: Callable[[], None] | None

    @property
    def writable(self) -> bool: ...

    @property
    def shared_frames(self) -> bool: ...

    @property
    def closing(self) -> bool: ...

    def frame(self, payload: Frame) -> bytes:
        """``payload`` as one whole WebSocket frame, the same for every connection that
        shares frames (so it is made once per audience)."""
        ...

    def write_frame(self, frame: bytes) -> None: ...

    def write_message(self, payload: Frame) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...


class Flusher:
    """Sends what was pushed, once per event-loop iteration, for every connection.

    A push only queues the frame and marks its connection; one callback per loop
    iteration then writes each marked connection's queue to its transport. So nothing
    wakes up per recipient, and events queued within one iteration go out back to back
    (coalesced past ``coalesce_after``). A frame queued for a whole audience is made into
    a WebSocket frame once (:func:`encode_frame`) and that same frame written to each.
    A connection whose transport is not taking data (a slow reader) keeps its queue
    until the transport asks for more (:meth:`Connection.on_writable`).

    Under load (flushing took more than ``busy`` of the loop's time lately) the flush
    waits ``linger`` seconds, so that the events arriving meanwhile go out together,
    coalesced into one frame per connection: a few ms of latency buy several times
    fewer sends per delivery, which is what keeps a busy process from falling behind.

    One per hub. Its callbacks run in a context of their own, so a line logged while
    flushing never carries the context of whichever connection happened to mark first.
    """

    __slots__ = ("busy", "busy_share", "coalesce_after", "context", "dirty", "last",
                 "linger", "scheduled")

    def __init__(self, *, coalesce_after: int = 2, linger: float = 0.005,
                 busy_share: float = 0.5) -> None:
        self.coalesce_after = coalesce_after
        self.linger = linger
        self.busy_share = busy_share
        self.context = contextvars.Context()
        self.dirty: list[Connection] = []
        self.scheduled = False
        self.busy = 0.0  # moving average of the share of time spent flushing
        self.last = time.perf_counter()  # when the last flush ended

    @classmethod
    def from_config(cls, config: Config) -> Flusher:
        return cls(coalesce_after=config.coalesce_after, linger=config.flush_linger)

    def mark(self, conn: Connection) -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            loop = asyncio.get_running_loop()
            if self.busy > self.busy_share and self.linger > 0:
                loop.call_later(self.linger, self.flush, context=self.context)
            else:
                loop.call_soon(self.flush, context=self.context)

    def flush(self) -> None:
        started = time.perf_counter()
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        loaded = self.busy > self.busy_share
        coalesce_after = self.coalesce_after
        if loaded and coalesce_after <= COALESCE_AFTER:  # (a larger one is an experiment)
            coalesce_after = min(coalesce_after, COALESCE_LOADED)
        # Frames made this flush, by the queued payload they carry (kept alive by the
        # dict, so an id is not reused while it lives).
        made: dict[int, tuple[Frame, bytes]] = {}
        sent = 0
        for conn in dirty:
            try:
                sent += conn.flush(coalesce_after, made)
            except Exception:  # one connection's failure must not starve the rest
                conn.log_context().run(log.exception, "flush failed", uid=conn.actor.uid,
                                       ip=conn.ip)
        if sent:
            metrics.FRAMES_SENT.inc(sent)
        ended = time.perf_counter()
        share = (ended - started) / max(ended - self.last, 1e-6)
        self.busy += 0.25 * (share - self.busy)
        self.last = ended


def _wire(made: dict[int, tuple[Frame, bytes]], payload: Frame, outlet: Outlet) -> bytes:
    """``payload`` as one WebSocket frame, made once however many connections send it."""
    key = id(payload)
    hit = made.get(key)
    if hit is not None and hit[0] is payload:
        return hit[1]
    frame = outlet.frame(payload)
    made[key] = (payload, frame)
    return frame


_NO_QUEUE: deque[Frame] = deque(maxlen=0)  # shared by every connection with nothing queued


class Connection:
    """One client WebSocket: who it is, and its bounded, coalescing send queue.

    Frames are written by the hub's :class:`Flusher` while the transport takes them;
    once it does not (a slow reader) they wait here, up to ``max_queue`` frames and
    ``max_queue_bytes``, and the connection is closed 1013 past that.
    """

    __slots__ = (
        "actor",
        "close_code",
        "close_reason",
        "codec",
        "flusher",
        "guest_token",
        "ip",
        "marked",
        "max_queue",
        "max_queue_bytes",
        "outlet",
        "queue",
        "queued_bytes",
        "replica",
    )

    def __init__(self, outlet: Outlet, codec: Codec, identity: Identity, ip: str,
                 max_queue: int, addr: str | None = None, *, flusher: Flusher,
                 watch: bool = False, max_queue_bytes: int = 4 * 1024 * 1024) -> None:
        self.outlet = outlet
        self.flusher = flusher
        self.codec = codec
        # ``addr``: the client address's key (livehub.addresses); only guests carry it
        # into the log, where guest bans and per-address limits count by it. A watcher
        # reads as a participant, whatever its token says (PROTOCOL.md).
        self.actor = core.Actor(identity.uid, identity.name,
                                Role.PARTICIPANT if watch else identity.role, identity.guest,
                                affiliation=None if identity.guest else identity.affiliation,
                                watch=watch, addr=addr if identity.guest else None)
        self.ip = ip
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes  # the queue's frames' len() (JSON: characters)
        self.queued_bytes = 0
        # Made when a frame waits and dropped once empty: an idle connection keeps none.
        self.queue: deque[Frame] = _NO_QUEUE
        self.close_code: int | None = None
        self.close_reason = ""
        self.replica: RoomReplica | None = None
        self.guest_token: str | None = None  # handed to a guest so a reconnect is the same guest
        self.marked = False
        outlet.on_writable = self.on_writable

    @property
    def role(self) -> Role:
        return self.actor.role

    @property
    def closed(self) -> bool:
        """Nothing more goes out: closed by us, by the client, or gone."""
        return self.outlet.closing

    def log_context(self) -> contextvars.Context:
        """A context that holds only this connection's log fields (push and close run
        in whichever task sent the event: a poster's, the broker's)."""
        ctx = contextvars.Context()
        ctx.run(structlog.contextvars.bind_contextvars, uid=self.actor.uid, ip=self.ip,
                room=self.replica.id if self.replica else None)
        return ctx

    def push(self, frame: Frame) -> None:
        if self.close_code is not None:
            return
        if (len(self.queue) >= self.max_queue
                or (self.queued_bytes + len(frame) > self.max_queue_bytes and self.queue)):
            metrics.SLOW_READER_CLOSES.inc()
            self.log_context().run(log.info, "slow reader closed")
            self.close(CloseCode.TRY_AGAIN, "send queue overflow: resume with since",
                       discard=True)
            return
        if self.queue is _NO_QUEUE:
            self.queue = deque()
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        if not self.marked and self.outlet.writable:
            self.marked = True
            self.flusher.mark(self)

    def send(self, obj: dict[str, Any]) -> None:
        self.push(self.codec.frame(obj))

    def on_writable(self) -> None:
        """The transport takes data again: send what queued meanwhile."""
        if self.queue and not self.marked:
            self.marked = True
            self.flusher.mark(self)

    def close(self, code: int, reason: str = "", *, discard: bool = False) -> None:
        """Close once what is queued has gone (or at once, ``discard``-ing it)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        if discard:
            self.queue.clear()
            self.queued_bytes = 0
        # What is queued is bounded: it goes into the transport's buffer now, ahead of
        # the close frame, whether or not the client is reading.
        outlet = self.outlet
        while self.queue:
            outlet.write_message(self._next_frame(self.flusher.coalesce_after))
        outlet.close(code, reason[:120])

    def _next_frame(self, coalesce_after: int) -> Frame:
        """The next frame to send: one event, or (backed up) several coalesced."""
        queue = self.queue
        if len(queue) <= coalesce_after:
            frame = queue.popleft()
            self.queued_bytes -= len(frame)
            return frame
        batch: list[Frame] = []
        size = 0
        while queue and size < MAX_BATCH_BYTES:
            frame = queue.popleft()
            size += len(frame)
            batch.append(frame)
        self.queued_bytes -= size
        if len(batch) > 1:
            metrics.COALESCED_FRAMES.inc()
        return self.codec.join(batch)

    def flush(self, coalesce_after: int, made: dict[int, tuple[Frame, bytes]]) -> int:
        """Write what is queued as far as the transport takes it now; frames sent."""
        self.marked = False
        outlet = self.outlet
        if self.close_code is not None:
            return 0
        sent = 0
        shared = outlet.shared_frames
        while self.queue and outlet.writable:
            payload = self._next_frame(coalesce_after)
            if shared:
                outlet.write_frame(_wire(made, payload, outlet))
            else:
                outlet.write_message(payload)
            sent += 1
        if not self.queue:
            self.queue = _NO_QUEUE
        return sent


class RoomReplica:
    """This process's copy of one room, and the connections it serves."""

    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.id = session.slug
        self.session = session
        self.state = roomlog.initial_state(session)
        # Ordering, gap fills, the lost-tail check and `since`: pure (livehub.sequencer);
        # this class carries out what it answers.
        self.sequencer = Sequencer(window=max(RECENT_EVENTS, hub.config.max_replay),
                                   max_replay=hub.config.max_replay)
        self.conns: set[Connection] = set()
        self.audiences: dict[tuple[Role, Codec], set[Connection]] = {}
        self.ready = asyncio.Event()
        self.failed = False  # its first load failed; it is not in the hub's replicas
        self._task: asyncio.Task[None] | None = None  # the log read or reload under way
        self._votes: dict[str, tuple[int, int]] = {}  # qid -> (seq, ts) of last unsent change
        self._tallies: dict[str, tuple[int, int]] = {}  # pid -> the same, for poll ballots
        self.watchers = 0  # connections in ``conns`` that watch (not counted online)
        self._reactions: dict[str, tuple[int, int]] = {}  # mid -> the same, for reactions
        self._vote_timer: asyncio.TimerHandle | None = None
        self.last_online = -1
        self.reported_online = -1

    @property
    def recent(self) -> deque[Event]:
        """The latest applied events (the window that serves `since`)."""
        return self.sequencer.recent

    # -- loading and ordering: the sequencer's inputs, and its actions carried out --------

    async def load(self) -> None:
        """Subscribe, then rebuild the state from the whole log."""
        await self.hub.broker.subscribe(self.id, self.hub)
        history = await roomlog.read_all(self.hub.broker, self.id)
        self.state = roomlog.initial_state(self.session, history.epoch)
        read = _log_read(history)
        self.state.seq = start_of(read)  # (a trimmed log does not start at 1)
        actions = self.sequencer.loaded(read)
        self.ready.set()  # (before the actions: a reset among them clears it again)
        self._do(actions)

    def on_events(self, epoch: str, events: list[Event]) -> None:
        self._do(self.sequencer.deliver(epoch, events))

    def on_resync(self) -> None:
        self._do(self.sequencer.resync())

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Apply):
                for ev in action.events:
                    self._apply(ev, fan_out=action.live)
            elif isinstance(action, ReadGap):
                metrics.GAP_FILLS.inc()
                self._start(self._read_gap(action.after), "gap")
            elif isinstance(action, RenewEpoch):
                log.warning("room log lost its newest events", room=self.id,
                            applied=action.applied, head=action.head)
                self._start(self._renew_epoch(action.epoch), "renew")
            else:
                self._reset(action)

    def _start(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run the one log read (or reload) the sequencer waits for, owned here."""
        # The hub's supervisor logs a failure and cancels it when the hub stops; the
        # replica keeps it to cancel when the room is dropped.
        task = self.hub.tasks.spawn(coro, name=f"{what}:{self.id}")
        self._task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def close(self) -> None:
        """Stop the log read or reload under way (the room is dropped, or we stop)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step`` until it succeeds: an outage (or a bug) must not leave the room
        stuck waiting for a read."""
        delay = 0.05
        while True:
            try:
                return await step()
            except BrokerUnavailable:
                metrics.BROKER_ERRORS.labels(what).inc()
            except Exception:
                # A bug or a bad log entry, not an outage: say so, and keep trying, so the
                # room is not left waiting for the read for ever.
                log.exception(_FAILED.get(what, f"{what} failed; retrying"), room=self.id,
                              delay=delay)
                metrics.BROKER_ERRORS.labels("gap" if what == "read" else what).inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _read_gap(self, after: int) -> None:
        history = await self._retrying("read", lambda: self.hub.broker.read(self.id, after))
        self._do(self.sequencer.gap_read(_log_read(history)))

    async def _renew_epoch(self, epoch: str) -> None:
        renewed = await self._retrying(
            "renew", lambda: self.hub.broker.renew_epoch(self.id, epoch))
        self._do(self.sequencer.epoch_renewed(renewed))

    def _reset(self, reset: Reset) -> None:
        """The log was lost and started again: rebuild, and send everyone to resume."""
        log.warning("room log lost; rebuilding", room=self.id, old_epoch=reset.old_epoch,
                    new_epoch=reset.epoch)
        for conn in list(self.conns):
            conn.close(CloseCode.TRY_AGAIN, "room log was reset: resume with since")
        self._votes.clear()
        self._tallies.clear()
        self._reactions.clear()
        self.ready.clear()
        self.state = roomlog.initial_state(self.session, reset.epoch)
        self._start(self._retrying("reload", self.load), "reload")

    # -- applying and fan-out -----------------------------------------------------

    def _apply(self, ev: Event, *, fan_out: bool) -> None:
        problem = event_problem(ev)
        if problem is not None:  # core.apply folds only its seq, and no view sends it
            log.warning("logged event does not fit its type: only its seq is applied",
                        room=self.id, problem=problem)
        core.apply(self.state, ev)
        metrics.EVENTS_APPLIED.inc()
        if ev["t"] in _MODERATION_GAUGED:
            metrics.OPEN_REPORTS.labels(self.id).set(len(self.state.mod.open))
            metrics.HELD_POSTS.labels(self.id).set(len(self.state.mod.held))
        if not fan_out or not self.conns:
            return
        t = ev["t"]
        if t == "vote":
            self._vote_changed(ev)
            return
        if t == "ballot":
            self._tally_changed(ev)
            return
        if t == "react":
            self._reactions[ev["mid"]] = (ev["seq"], ev["ts"])
            self._schedule_flush()
            return
        if self._votes or self._tallies or self._reactions:
            self.flush_votes()  # keep each client's stream complete up to its last seq
        self.broadcast(lambda role: core.view(self.state, ev, role))
        owner = mod.owner(ev)
        if owner is not None:  # a held post's author sees it (and its rejection)
            self.send_to_owner(ev, owner)
        if t == "ban":
            for conn in [c for c in self.conns if c.actor.uid == ev["uid"]]:
                conn.send(p.error_frame(ErrorCode.BANNED, "you were banned from this room"))
                conn.close(CloseCode.FORBIDDEN, "banned")
        elif t == "room":
            self.hub.update_gauges()  # the room may have opened or closed

    def broadcast(self, view: Callable[[Role], Event | None]) -> None:
        """Send each audience its view of one event, encoded once per (role, codec)."""
        views: dict[Role, Event | None] = {}
        delivered = 0
        for (role, codec), conns in self.audiences.items():
            if not conns:
                continue
            if role not in views:
                views[role] = view(role)
            obj = views[role]
            if obj is None:
                continue
            frame = codec.frame(obj)
            for conn in conns:
                conn.push(frame)
            delivered += len(conns)
        metrics.DELIVERIES.inc(delivered)

    def send_to_owner(self, ev: Event, uid: str) -> None:
        """Send ``uid``'s own connections (other than moderators') their view of ``ev``."""
        mine = [c for c in self.conns if c.actor.uid == uid and c.role is not Role.MODERATOR]
        if not mine or core.view(self.state, ev, mine[0].role) is not None:
            return  # nobody, or they had it with everyone else
        seen = core.view(self.state, ev, mine[0].role, uid)
        if seen is not None:
            for conn in mine:
                conn.send(seen)

    def _vote_changed(self, ev: Event) -> None:
        self._votes[ev["qid"]] = (ev["seq"], ev["ts"])
        self._schedule_flush()

    def _tally_changed(self, ev: Event) -> None:
        self._tallies[ev["pid"]] = (ev["seq"], ev["ts"])
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        window = self.hub.config.vote_window
        if window <= 0:
            self.flush_votes()
        elif self._vote_timer is None:
            self._vote_timer = asyncio.get_running_loop().call_later(window, self.flush_votes)

    def flush_votes(self) -> None:
        """One ``votes`` event per question, one ``tally`` per poll and one ``reactions``
        per post changed since
        the last flush, in ``seq`` order (so each client's stream keeps rising)."""
        if self._vote_timer is not None:
            self._vote_timer.cancel()
            self._vote_timer = None
        votes, self._votes = self._votes, {}
        tallies, self._tallies = self._tallies, {}
        reacted, self._reactions = self._reactions, {}
        pending = [(seq, ts, qid, "q") for qid, (seq, ts) in votes.items()]
        pending += [(seq, ts, pid, "p") for pid, (seq, ts) in tallies.items()]
        pending += [(seq, ts, mid, "m") for mid, (seq, ts) in reacted.items()]
        for seq, ts, key, kind in sorted(pending):
            if kind == "p":
                poll = self.state.polls.get(key)
                if poll is not None:
                    tally = polls.tally_event(poll, seq, ts)
                    self.broadcast(lambda role, ev=tally: ev)  # type: ignore[misc]
                continue
            if kind == "m":
                if key in self.state.messages:
                    counts = mod.reactions_event(self.state, key, seq, ts)
                    self.broadcast(lambda role, ev=counts: ev)  # type: ignore[misc]
                continue
            q = self.state.questions.get(key)
            if q is None:
                continue
            ev = core.votes_event(q, seq, ts)
            hidden = q.state == "pending"
            self.broadcast(lambda role, ev=ev, hidden=hidden:  # type: ignore[misc]
                           None if hidden and not role.is_staff else ev)

    def people(self) -> int:
        """Connections counted in ``online`` here: watchers are not."""
        return len(self.conns) - self.watchers

    # -- membership -----------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        conn.replica = self
        if conn.actor.watch and conn not in self.conns:
            self.watchers += 1
        self.conns.add(conn)
        self.audiences.setdefault((conn.role, conn.codec), set()).add(conn)

    def remove(self, conn: Connection) -> None:
        if conn.actor.watch and conn in self.conns:
            self.watchers -= 1
        self.conns.discard(conn)
        group = self.audiences.get((conn.role, conn.codec))
        if group is not None:
            group.discard(conn)

    def welcome(self, conn: Connection, since: int | None, epoch: str | None,
                older: list[Event] | None, online: int) -> dict[str, Any]:
        """The ``welcome`` frame for ``conn``; ``older`` are logged events read for ``since``."""
        state, role = self.state, conn.role
        frame: dict[str, Any] = {
            "t": "welcome",
            "me": {"uid": conn.actor.uid, "name": conn.actor.name, "role": str(role)},
            "room": state.room_wire(),
            "seq": state.seq,
            "epoch": state.epoch,
            "online": online,
            "pinned": [mod.with_reactions(state, m) for m in core.pinned(state)],
            "polls": polls.welcome_polls(state),
        }
        # At most 200, the one on stage first (welcome_bounds; PROTOCOL.md).
        sent = welcome_bounds.welcome_questions(state, role)
        frame["questions"] = [core.question_view(q, role, with_answers=True) for q in sent]
        me = frame["me"]
        if conn.actor.affiliation:
            me["affiliation"] = conn.actor.affiliation
        if conn.actor.watch:
            me["watch"] = True
        if conn.actor.guest:
            me["guest"] = True
            if conn.guest_token:
                me["token"] = conn.guest_token
        now = now_ms()
        if state.is_muted(conn.actor.uid, now):
            me["muted_until"] = state.mutes[conn.actor.uid]
        me["votes"] = [q.qid for q in sent if conn.actor.uid in q.voters]
        # The person's own last ballot in each poll, so their choices show after a reload.
        me["ballots"] = {poll.pid: list(poll.ballots[conn.actor.uid])
                         for poll in state.polls.values() if conn.actor.uid in poll.ballots}
        if role is Role.MODERATOR:
            frame["moderation"] = {
                "mutes": [{"uid": uid, "name": state.names.get(uid), "until": until}
                          for uid, until in state.mutes.items() if state.is_muted(uid, now)],
                "bans": [{"uid": uid, "name": state.names.get(uid)} for uid in state.bans],
            }
            extra = mod.welcome(state)  # open reports and held posts
            extra["held"] = [core.client_copy(m) for m in extra["held"]]
            frame.update(extra)
        if since is not None:
            events = self.sequencer.since(since, epoch, older)
            frame["recovered"] = events is not None
            frame["history"] = (core.history(state) if events is None
                                else core.replay(state, events, role, conn.actor.uid))
        else:
            frame["history"] = core.history(state)
        if frame["history"] and state.mod.reactions:
            frame["history"] = [mod.with_reactions(state, m) if m["t"] == "msg" else m
                                for m in frame["history"]]
        return frame

    def needs_log_read(self, since: int | None, epoch: str | None = None) -> int:
        """How many events after ``since`` a welcome must read from the log (0: none)."""
        return self.sequencer.needs_log_read(since, epoch)


_FAILED: Final = {"read": "gap fill failed; retrying",
                  "reload": "room reload failed; retrying",
                  "renew": "epoch renewal failed; retrying"}


def _log_read(history: History) -> LogRead:
    return LogRead(history.epoch, history.head, history.events, history.complete)


class Hub:
    """All rooms this process serves, and the request path from decide to commit."""

    def __init__(self, config: Config, broker: Broker, programme: Programme) -> None:
        self.config = config
        self.broker = broker
        self.programme = programme
        self.replicas: dict[str, RoomReplica] = {}
        self._dropping: dict[str, asyncio.Task[None]] = {}  # rooms being unsubscribed
        self.tasks = Supervisor("hub")  # every background task of this hub
        self.changes = 0  # bumped by update_gauges: a cached /api/rooms answer is stale
        # A storm of joins to one room shares one online read and one write per room.
        self._online_reads: SingleFlight[str, dict[str, int]] = SingleFlight()
        self._online_writes: SingleFlight[str, None] = SingleFlight()
        self.limits = Limits(
            rate_limit=config.rate_limit, rate_window_ms=int(config.rate_window * 1000),
            guest_address_rate=config.guest_address_rate,
            guest_votes_per_address=config.guest_votes_per_address,
        )
        # The request path (decide, checks, commit, answer), shared with the HTTP API.
        self.service = RequestService(broker, limits=self.limits, max_text=config.max_text,
                                      max_keys=config.max_idem_keys)
        self.accepting = True
        self.greeting: set[Greeting] = set()  # connections still before their hello
        self.flusher = Flusher.from_config(config)
        # Joined connections' request and leave tasks (livehub.reader), while they run.
        self.connection_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.tasks.keep_running(self._presence_loop, name="presence")

    async def stop(self, reason: str = "server shutting down: reconnect with since") -> None:
        """Close every client with 1013 (they resume elsewhere) and stop."""
        self.accepting = False
        # Finish the commits already begun, so every acknowledged post is answered.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.service.idle.wait(), self.config.shutdown_grace)
        closing = [self.tasks.spawn(self._close_greeting(ws, reason), name="close-greeting")
                   for ws in list(self.greeting)]
        conns = [c for r in self.replicas.values() for c in r.conns]
        for conn in conns:
            conn.close(CloseCode.TRY_AGAIN, reason)
        # Their queues and close frames are in the transports' buffers now; let the
        # greeting connections' closes go before the tasks are cancelled.
        if closing:
            await asyncio.wait(closing, timeout=2.0)
        await self.tasks.close()  # (the rooms' log reads and reloads among them)

    @staticmethod
    async def _close_greeting(ws: Greeting, reason: str) -> None:
        with contextlib.suppress(Exception):  # it may be closing or gone already
            await ws.close(code=CloseCode.TRY_AGAIN, reason=reason[:120])

    # -- Listener (called by the broker) ---------------------------------------------

    def on_events(self, room: str, epoch: str, events: list[Event]) -> None:
        replica = self.replicas.get(room)
        if replica is not None:
            replica.on_events(epoch, events)

    def on_resync(self, room: str) -> None:
        replica = self.replicas.get(room)
        if replica is not None:
            replica.on_resync()

    # -- rooms --------------------------------------------------------------------------

    def session(self, room: str) -> Session | None:
        return self.programme.get(room)

    async def replica(self, room: str) -> RoomReplica:
        """The replica of ``room``, loaded from the log on first use."""
        replica = self.replicas.get(room)
        if replica is not None:
            if not replica.ready.is_set():
                try:  # bounded: a room that cannot load answers `unavailable`
                    await asyncio.wait_for(replica.ready.wait(), JOIN_WAIT)
                except TimeoutError:
                    raise BrokerUnavailable(f"room {room} is still loading") from None
                if replica.failed:
                    raise BrokerUnavailable(f"room {room} could not be loaded")
            return replica
        session = self.session(room)
        if session is None:
            raise KeyError(room)
        dropping = self._dropping.get(room)
        if dropping is not None:  # let its unsubscribe land before we subscribe again
            await asyncio.wait([dropping])
            return await self.replica(room)
        replica = self.replicas[room] = RoomReplica(self, session)
        try:
            await replica.load()
        except BaseException:
            del self.replicas[room]
            replica.failed = True
            replica.ready.set()  # wake those waiting for it: they see it failed
            raise
        return replica

    async def join(self, conn: Connection, room: str, since: int | None,
                   epoch: str | None) -> None:
        """Add ``conn`` to ``room`` and queue its ``welcome``.

        Everything that awaits comes first; registering the connection and queueing
        its welcome then happen with no await between, so no event reaches the
        connection before its welcome or falls between the welcome's snapshot and it.
        """
        while True:
            replica = await self.replica(room)
            older: list[Event] | None = None
            if replica.needs_log_read(since, epoch):
                try:  # one bounded read: at most max_replay events (needs_log_read)
                    after = since or 0
                    older = (await self.broker.read(
                        room, after, limit=replica.state.seq - after)).events
                except BrokerUnavailable:
                    metrics.BROKER_ERRORS.labels("read").inc()
                    older = None
            n = replica.people() + (not conn.actor.watch)
            await self._online_writes.run(room, partial(self._set_online, replica, n))
            online = (await self._online_reads.run(
                room, partial(self._online, [room]))).get(room, 0)
            if self.replicas.get(room) is replica and replica.ready.is_set():
                break  # otherwise it was reset or dropped meanwhile: start again
        replica.add(conn)
        online = max(online, replica.people())
        frame = replica.welcome(conn, since, epoch, older, online)
        conn.push(welcome_bounds.encode_welcome(
            frame, conn.codec, partial(_plain_history, replica.state),
            max_replay_bytes=self.config.max_replay_bytes))
        self.update_gauges()

    async def leave(self, conn: Connection) -> None:
        replica = conn.replica
        if replica is None:
            return
        replica.remove(conn)
        conn.replica = None
        self.update_gauges()
        if not replica.conns:
            await self._report_online(replica)
            # Keep an empty room's replica (and subscription) a while: people reload
            # pages and reconnect, and rebuilding from the log each time is waste.
            loop = asyncio.get_running_loop()
            loop.call_later(self.config.room_linger, lambda: self.tasks.spawn(
                self._drop_if_idle(replica), name=f"linger:{replica.id}"))

    async def _drop_if_idle(self, replica: RoomReplica) -> None:
        if replica.conns or self.replicas.get(replica.id) is not replica:
            return
        del self.replicas[replica.id]
        self.update_gauges()
        task = asyncio.current_task()
        assert task is not None
        self._dropping[replica.id] = task
        try:
            await replica.close()
            await self.broker.unsubscribe(replica.id)
        except BrokerUnavailable:
            pass
        finally:
            if self._dropping.get(replica.id) is task:
                del self._dropping[replica.id]

    async def _set_online(self, replica: RoomReplica, n: int) -> None:
        replica.reported_online = n
        try:
            await self.broker.set_online(replica.id, n)
        except BrokerUnavailable:
            replica.reported_online = -1

    async def _report_online(self, replica: RoomReplica) -> None:
        n = replica.people()
        if n != replica.reported_online:
            replica.reported_online = n
            try:
                await self.broker.set_online(replica.id, n)
            except BrokerUnavailable:
                replica.reported_online = -1

    async def _online(self, rooms: list[str]) -> dict[str, int]:
        try:
            return await self.broker.online(rooms)
        except BrokerUnavailable:
            metrics.BROKER_ERRORS.labels("online").inc()
            return {r: self.replicas[r].people() if r in self.replicas else 0 for r in rooms}

    async def online_all(self) -> dict[str, int]:
        return await self._online([s.slug for s in self.programme.sessions])

    async def _presence_loop(self) -> None:
        interval = self.config.presence_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self._presence_tick()
            except Exception:
                log.exception("presence update failed")

    async def _presence_tick(self) -> None:
        replicas = [r for r in self.replicas.values() if r.conns]
        for replica in replicas:
            await self._report_online(replica)
        if not replicas:
            return
        counts = await self._online([r.id for r in replicas])
        for replica in replicas:
            online = max(counts.get(replica.id, 0), replica.people())
            if online != replica.last_online:
                replica.last_online = online
                frame = {"t": "presence", "online": online}
                replica.broadcast(lambda role, frame=frame: frame)  # type: ignore[misc]

    def update_gauges(self) -> None:
        self.changes += 1  # someone came or went, or a room opened or closed (/api/rooms)
        by_state = {"open": 0, "closed": 0}
        rooms = {"open": 0, "closed": 0}
        for replica in self.replicas.values():
            by_state[replica.state.state_name] += len(replica.conns)
            rooms[replica.state.state_name] += 1
        for name in by_state:
            metrics.CONNECTIONS.labels(name).set(by_state[name])
            metrics.ROOMS.labels(name).set(rooms[name])

    # -- requests ------------------------------------------------------------------------

    async def handle(self, conn: Connection, req: p.Request) -> None:
        """Decide, commit, answer (:mod:`livehub.service`). Errors become ``error``
        frames; nothing raises."""
        replica = conn.replica
        assert replica is not None
        idem = req.id if req.id is not None and req.t in IDEMPOTENT else None
        call = Call(replica.id, conn.actor, req, idem=idem, ip=conn.ip,
                    words=self.programme.matcher(replica.id))
        try:
            answer = await self.service.run(replica.state, call)
        except ProtocolError as exc:
            conn.send(p.error_frame(exc.code, exc.message, req.id))
            return
        if req.id is not None:
            conn.send(p.ok_frame(req.id, **answer.reply))

    # -- programme reload (SIGHUP, POST /api/programme/reload) ----------------------------

    async def reload_programme(self, programme: Programme) -> dict[str, list[str]]:
        """Serve ``programme`` from now on without dropping anyone; what changed, by slug.

        New sessions are rooms at once. A room loaded here keeps its state, people and
        log, and takes the new title, times and speakers. Its settings come from the
        file until a moderator changes them in the room: the settings in the log win,
        so the file's new settings reach only rooms whose log has no ``room`` event.
        A session gone from the file stays while people are in its room here.
        """
        old = self.programme
        kept = tuple(s for s in old.sessions if programme.get(s.slug) is None
                     and s.slug in self.replicas and self.replicas[s.slug].conns)
        if kept:
            # (replace keeps every other part: watched words, sign-in rules...)
            programme = dataclasses.replace(programme, sessions=(*programme.sessions, *kept))
        changes: dict[str, list[str]] = {
            "added": [s.slug for s in programme.sessions if old.get(s.slug) is None],
            "updated": [s.slug for s in programme.sessions
                        if old.get(s.slug) not in (None, s)],
            "removed": [s.slug for s in old.sessions if programme.get(s.slug) is None],
            "kept": [s.slug for s in kept],
        }
        self.programme = programme
        for replica in list(self.replicas.values()):
            session = programme.get(replica.id)
            if session is None or session == replica.session:
                continue
            before, replica.session = replica.session, session
            replica.state.title = session.title
            same = (before.slow_mode, before.guests, before.premoderate) == (
                session.slow_mode, session.guests, session.premoderate)
            if same or not replica.ready.is_set():
                continue  # (a replica still loading folds its log over the new session)
            if await self._log_changed_settings(replica):
                continue
            if self.replicas.get(replica.id) is replica and replica.session is session:
                replica.state.settings = core.RoomSettings(
                    slow_mode=session.slow_mode, guests=session.guests,
                    premoderate=session.premoderate)
        return changes

    async def _log_changed_settings(self, replica: RoomReplica) -> bool:
        """Whether the room's log holds a ``room`` event (True when that cannot be known)."""
        recent = replica.recent
        if any(ev["t"] == "room" for ev in recent):
            return True
        if replica.state.seq == 0 or (recent and recent[0]["seq"] == 1):
            return False  # the whole log is in `recent`
        try:
            history = await roomlog.read_all(self.broker, replica.id)
        except BrokerUnavailable:
            return True
        return (not history.complete or history.epoch != replica.state.epoch
                or any(ev["t"] == "room" for ev in history.events)
                or any(ev["t"] == "room" for ev in replica.recent))


def _plain_history(state: core.RoomState) -> list[Event]:
    """The latest posts as a welcome carries them (with reactions): a replay's fallback."""
    return [mod.with_reactions(state, m) if m["t"] == "msg" else m
            for m in core.history(state)]

