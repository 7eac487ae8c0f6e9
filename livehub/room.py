"""The room core: a room's state, and the pure rules that change it.

* :func:`decide` checks a request against the state and returns the events it
  should cause (or raises :class:`ProtocolError`). It reads no clock and no
  randomness: ``Context`` brings the time and a fresh id.
* :func:`apply` folds one committed event into the state. Every server process
  applies the same events in the same ``seq`` order, so every replica agrees.
  It is total: an event that no longer makes sense (a pin of a post deleted
  meanwhile through another process) changes nothing rather than failing.
* :func:`view` is what one role may see of an event; :func:`welcome_view` and
  :func:`replay` build the ``welcome`` parts.

Events are plain dicts in their wire form plus a few internal keys
(``by``, ``prev``...) that only moderators' copies keep; their keys are defined
once, as typed structs, in :mod:`livehub.events`, which ``apply`` checks each
event against. The core imports only the standard library, msgspec and the
protocol's request types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

from livehub import events, polls
from livehub import moderation as mod
from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import CLOSED_ROOM_EXEMPT, SLOW_MODE_EXEMPT, Role, may
from livehub.watchwords import Matcher

Event = dict[str, Any]

HISTORY_WINDOW: Final = 100
ANONYMOUS_NAME: Final = "Anonymous"
LIVE_QSTATES: Final = frozenset({"open", "answering"})
# Keys that record who did what: kept for moderators and the log, dropped from
# everyone else's copy. Defined with each event's keys in livehub.events.
_INTERNAL_KEYS: Final = events.WHO_DID_WHAT
# A guest's address key: in the log (so that every process can hold a guest ban and
# count per-address limits), in no client's copy, moderators' included.
ADDR: Final = events.ADDR
# What participants and speakers may know of a moderation act: what happened, never
# the name of the person it was about (nor who did it). Moderators see everything.
_ACT_KEYS: Final[dict[str, frozenset[str]]] = events.act_keys()


@dataclass(frozen=True, slots=True)
class Actor:
    uid: str
    name: str
    role: Role
    guest: bool = False
    affiliation: str | None = None  # a signed-in person's badge; guests never have one
    watch: bool = False  # a read-only watcher: refused every request but ping
    # For guests: a keyed hash of the client address (see ``livehub.addresses``), which
    # guest bans and per-address limits count by. None for signed-in people.
    addr: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What the outside world contributes to a decision."""

    now: int  # server time, ms since the epoch
    new_id: str  # a fresh id for a post or question
    max_text: int = 2000
    words: Matcher | None = None  # the room's watched words (block and hold lists)


@dataclass(slots=True)
class RoomSettings:
    slow_mode: int = 0
    guests: bool = True
    premoderate: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"slow_mode": self.slow_mode, "guests": self.guests,
                "premoderate": self.premoderate}


@dataclass(slots=True)
class Question:
    qid: str
    uid: str
    name: str
    text: str
    state: str
    seq: int
    ts: int
    anonymous: bool = False
    guest: bool = False
    affiliation: str | None = None
    voters: set[str] = field(default_factory=set)
    answers: list[Event] = field(default_factory=list)
    # seq of the event that first showed it to participants (None: they have not seen
    # it: pending, or declined before it was ever open)
    shown: int | None = None

    @property
    def votes(self) -> int:
        return len(self.voters)


@dataclass(slots=True)
class RoomState:
    room: str
    title: str = ""
    settings: RoomSettings = field(default_factory=RoomSettings)
    open: bool = True
    epoch: str = ""
    seq: int = 0
    messages: dict[str, Event] = field(default_factory=dict)  # mid -> msg, oldest first
    pinned: dict[str, None] = field(default_factory=dict)  # ordered set of mids
    questions: dict[str, Question] = field(default_factory=dict)
    answering: str | None = None
    mutes: dict[str, int | None] = field(default_factory=dict)  # uid -> until; None: no end
    bans: set[str] = field(default_factory=set)
    last_post: dict[str, int] = field(default_factory=dict)  # uid -> ts of last accepted post
    names: dict[str, str] = field(default_factory=dict)  # uid -> last display name seen
    deleted: set[str] = field(default_factory=set)  # removed mids and qids
    polls: dict[str, polls.Poll] = field(default_factory=dict)  # pid -> poll, oldest first
    private_mutes: set[str] = field(default_factory=set)  # muted through anonymous questions
    guest_addrs: dict[str, str] = field(default_factory=dict)  # guest uid -> address key
    # address key -> the banned guests it came from: new guests from there are refused
    banned_addrs: dict[str, set[str]] = field(default_factory=dict)
    mod: mod.Moderation = field(default_factory=mod.Moderation)  # reports, held, reactions
    max_messages: int = 10_000  # older posts stay in the log, not in memory

    @property
    def state_name(self) -> str:
        return "open" if self.open else "closed"

    def is_muted(self, uid: str, now: int) -> bool:
        if uid not in self.mutes:
            return False
        until = self.mutes[uid]
        return until is None or until > now

    def room_wire(self) -> dict[str, Any]:
        return {"id": self.room, "title": self.title, "state": self.state_name,
                "settings": self.settings.to_wire()}


# --- decide ------------------------------------------------------------------


@dataclass(slots=True)
class Decision:
    """The events a request causes and the fields of its ``ok`` answer.

    ``ref`` is the id a repeated ``post``/``ask`` must be answered with again.
    """

    events: list[Event]
    reply: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    seq: bool = True  # False: the ``ok`` carries no seq (a report's is not the sender's)


def decide(state: RoomState, actor: Actor, req: p.Request, ctx: Context) -> Decision:
    """Check ``req`` from ``actor`` against ``state``; the events it causes.

    Raises :class:`ProtocolError` for a refusal; nothing is changed then.
    """
    rid = req.id
    if actor.watch and req.t != "ping":
        raise ProtocolError(ErrorCode.FORBIDDEN, "a watcher may only watch", rid)
    if not may(actor.role, req.t):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"a {actor.role} may not {req.t}", rid)
    if actor.uid in state.bans:
        raise ProtocolError(ErrorCode.BANNED, "you are banned from this room", rid)
    if actor.guest and not state.settings.guests and req.t != "ping":
        raise ProtocolError(ErrorCode.FORBIDDEN,
                            "this room no longer admits guests: you can read but not post",
                            rid)
    handler = _HANDLERS.get(type(req))
    if handler is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{req.t} is not a room request", rid)
    decision: Decision = handler(state, actor, req, ctx)
    return decision


def _by(actor: Actor) -> dict[str, Any]:
    return {"by": actor.uid, "by_name": actor.name}


def _badge(ev: Event, actor: Actor) -> Event:
    """Adds the actor's affiliation badge to ``ev`` (guests never carry one)."""
    if actor.affiliation and not actor.guest:
        ev["affiliation"] = actor.affiliation
    return ev


def _mark_guest(ev: Event, actor: Actor) -> Event:
    if actor.guest:
        ev["guest"] = True
        if actor.addr is not None:
            ev[ADDR] = actor.addr
    return ev


def _check_text(text: str, ctx: Context, rid: str | None) -> None:
    if len(text) > ctx.max_text:
        raise ProtocolError(ErrorCode.TOO_LONG, f"text is over {ctx.max_text} characters", rid)
    if not text:
        raise ProtocolError(ErrorCode.BAD_FRAME, "text is empty", rid)


def _check_may_speak(state: RoomState, actor: Actor, ctx: Context, rid: str | None) -> None:
    if not state.open and actor.role not in CLOSED_ROOM_EXEMPT:
        raise ProtocolError(ErrorCode.ROOM_CLOSED, "the room is closed", rid)
    if state.is_muted(actor.uid, ctx.now):
        until = state.mutes[actor.uid]
        when = "until a moderator lifts it" if until is None else f"until {until}"
        raise ProtocolError(ErrorCode.MUTED, f"you are muted {when}", rid)


def _visible_question(state: RoomState, actor: Actor, qid: str, rid: str | None) -> Question:
    q = state.questions.get(qid)
    if q is None or (q.state == "pending" and not actor.role.is_staff):
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no question {qid}", rid)
    return q


def _post(state: RoomState, actor: Actor, req: p.Post, ctx: Context) -> Decision:
    _check_text(req.text, ctx, req.id)
    _check_may_speak(state, actor, ctx, req.id)
    slow = state.settings.slow_mode
    if slow and actor.role not in SLOW_MODE_EXEMPT:
        last = state.last_post.get(actor.uid)
        if last is not None and ctx.now - last < slow * 1000:
            wait = (slow * 1000 - (ctx.now - last) + 999) // 1000
            raise ProtocolError(ErrorCode.SLOW_MODE, f"slow mode: wait {wait} s", req.id)
    if req.reply_to is not None and req.reply_to not in state.messages:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no post {req.reply_to}", req.id)
    held = mod.screen(ctx, actor, req.text, req.id)
    ev: Event = {"t": "msg", "mid": ctx.new_id, "uid": actor.uid, "name": actor.name,
                 "role": str(actor.role), "text": req.text, "ts": ctx.now}
    if req.reply_to is not None:
        ev["reply_to"] = req.reply_to
    _mark_guest(ev, actor)
    ev = _badge(ev, actor)
    if held:
        ev["held"] = True
        return Decision([ev], {"mid": ctx.new_id, "held": True}, ref=ctx.new_id)
    return Decision([ev], {"mid": ctx.new_id}, ref=ctx.new_id)


def _ask(state: RoomState, actor: Actor, req: p.Ask, ctx: Context) -> Decision:
    _check_text(req.text, ctx, req.id)
    _check_may_speak(state, actor, ctx, req.id)
    held = mod.screen(ctx, actor, req.text, req.id)
    pending = held or (state.settings.premoderate and not actor.role.is_staff)
    ev: Event = {"t": "q", "qid": ctx.new_id, "uid": actor.uid, "name": actor.name,
                 "text": req.text, "votes": 0, "state": "pending" if pending else "open",
                 "ts": ctx.now}
    if req.anonymous:
        ev["anonymous"] = True
    else:
        _badge(ev, actor)
    _mark_guest(ev, actor)
    return Decision([ev], {"qid": ctx.new_id}, ref=ctx.new_id)


def _vote(state: RoomState, actor: Actor, req: p.Vote, ctx: Context) -> Decision:
    q = _visible_question(state, actor, req.qid, req.id)
    if q.state not in LIVE_QSTATES and q.state != "pending":
        raise ProtocolError(ErrorCode.FORBIDDEN, f"the question is {q.state}", req.id)
    if (actor.uid in q.voters) == req.up:
        return Decision([], {"votes": q.votes})  # already so: nothing to publish
    votes = q.votes + (1 if req.up else -1)
    ev: Event = {"t": "vote", "qid": q.qid, "uid": actor.uid, "up": req.up, "ts": ctx.now}
    if actor.guest and actor.addr is not None:
        ev[ADDR] = actor.addr
    return Decision([ev], {"votes": votes})


def _answer(state: RoomState, actor: Actor, req: p.Answer, ctx: Context) -> Decision:
    _check_text(req.text, ctx, req.id)
    q = _visible_question(state, actor, req.qid, req.id)
    mod.screen(ctx, actor, req.text, req.id)
    ev: Event = {"t": "answer", "qid": q.qid, "uid": actor.uid, "name": actor.name,
                 "role": str(actor.role), "text": req.text, "ts": ctx.now}
    return Decision([_badge(ev, actor)])


def _qstate(state: RoomState, actor: Actor, req: p.SetQState, ctx: Context) -> Decision:
    q = _visible_question(state, actor, req.qid, req.id)
    if req.state == q.state:
        return Decision([])
    if req.state == "pending":
        raise ProtocolError(ErrorCode.FORBIDDEN, "a question cannot go back to pending", req.id)
    events: list[Event] = []
    if req.state == "answering" and state.answering and state.answering != q.qid:
        events.append({"t": "qstate", "qid": state.answering, "state": "answered",
                       "prev": "answering", "ts": ctx.now, **_by(actor)})
    events.append({"t": "qstate", "qid": q.qid, "state": req.state, "prev": q.state,
                   "ts": ctx.now, **_by(actor)})
    return Decision(events)


def _pin(state: RoomState, actor: Actor, req: p.Pin | p.Unpin, ctx: Context) -> Decision:
    if req.mid not in state.messages:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no post {req.mid}", req.id)
    if (req.mid in state.pinned) == (req.t == "pin"):
        return Decision([])
    return Decision([{"t": req.t, "mid": req.mid, "ts": ctx.now, **_by(actor)}])


def _delete(state: RoomState, actor: Actor, req: p.Delete, ctx: Context) -> Decision:
    ev: Event = {"t": "del", "ts": ctx.now, **_by(actor)}
    if req.mid is not None:
        msg = state.messages.get(req.mid) or state.mod.held.get(req.mid)
        if msg is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no post {req.mid}", req.id)
        ev["mid"] = req.mid
        if msg.get("held"):
            ev["held"] = True  # rejecting a held post: its author and moderators hear of it
        author, author_name = msg["uid"], msg["name"]
    else:
        assert req.qid is not None  # the protocol layer guarantees one of the two
        own = state.questions.get(req.qid)
        # Askers may withdraw their own question while it still waits for approval.
        q = own if own is not None and own.uid == actor.uid else _visible_question(
            state, actor, req.qid, req.id)
        ev["qid"] = q.qid
        if q.state == "pending":
            ev["pending"] = True
        author, author_name = q.uid, q.name
    is_moderator = actor.role is Role.MODERATOR
    if not is_moderator and author != actor.uid:
        raise ProtocolError(ErrorCode.FORBIDDEN, "only moderators may remove others' posts",
                            req.id)
    ev["of"], ev["of_name"] = author, author_name
    events = [ev, *mod.resolve_item(state, ev.get("mid") or ev["qid"], actor, ctx)]
    if req.mute not in (None, False):
        if not is_moderator:
            raise ProtocolError(ErrorCode.FORBIDDEN, "only moderators may mute", req.id)
        if author == actor.uid:  # as for `mute`: nobody mutes themselves
            raise ProtocolError(ErrorCode.FORBIDDEN, "you cannot mute yourself", req.id)
        seconds = None if req.mute is True else int(req.mute)
        mute = _mute_event(state, actor, author, seconds, ctx)
        if "qid" in ev and state.questions[ev["qid"]].anonymous:
            mute["private"] = True  # muting the asker must not unmask an anonymous question
        events.append(mute)
    return Decision(events)


def _mute_event(state: RoomState, actor: Actor, uid: str, seconds: int | None,
                ctx: Context) -> Event:
    until = None if seconds is None else ctx.now + seconds * 1000
    ev: Event = {"t": "mute", "uid": uid, "until": until, "ts": ctx.now, **_by(actor)}
    if uid in state.names:
        ev["name"] = state.names[uid]
    return ev


def _target(state: RoomState, actor: Actor, req: p.Mute | p.Ban) -> tuple[str, bool]:
    """Who a mute or ban is about, and whether it must stay between moderators (it was
    made through an anonymous question, so the room must not learn who asked)."""
    if req.uid is not None:
        uid = req.uid
        private = False
    else:
        assert req.qid is not None  # the protocol layer guarantees one of the two
        q = _visible_question(state, actor, req.qid, req.id)
        uid, private = q.uid, q.anonymous
    if uid == actor.uid:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"you cannot {req.t} yourself", req.id)
    return uid, private


def _mute(state: RoomState, actor: Actor, req: p.Mute, ctx: Context) -> Decision:
    uid, private = _target(state, actor, req)
    ev = _mute_event(state, actor, uid, req.seconds, ctx)
    if private:
        ev["private"] = True
    return Decision([ev])


def _unmute(state: RoomState, actor: Actor, req: p.Unmute, ctx: Context) -> Decision:
    if not state.is_muted(req.uid, ctx.now):
        return Decision([])
    ev: Event = {"t": "unmute", "uid": req.uid, "until": None, "ts": ctx.now, **_by(actor)}
    if req.uid in state.private_mutes:
        ev["private"] = True  # lifting a mute made through an anonymous question
    return Decision([ev])


def _ban(state: RoomState, actor: Actor, req: p.Ban | p.Unban, ctx: Context) -> Decision:
    if isinstance(req, p.Ban):
        uid, _ = _target(state, actor, req)
    else:
        uid = req.uid
        if uid == actor.uid:
            raise ProtocolError(ErrorCode.FORBIDDEN, "you cannot unban yourself", req.id)
    if (uid in state.bans) == (req.t == "ban"):
        return Decision([])
    ev: Event = {"t": req.t, "uid": uid, "ts": ctx.now, **_by(actor)}
    if uid in state.names:
        ev["name"] = state.names[uid]
    if req.t == "ban" and uid in state.guest_addrs:
        # A banned guest must not walk back in under a new name from the same address.
        ev[ADDR] = state.guest_addrs[uid]
    return Decision([ev])


def _settings(state: RoomState, actor: Actor, req: p.Settings, ctx: Context) -> Decision:
    s = state.settings
    settings = {
        "slow_mode": s.slow_mode if req.slow_mode is None else req.slow_mode,
        "guests": s.guests if req.guests is None else req.guests,
        "premoderate": s.premoderate if req.premoderate is None else req.premoderate,
    }
    room_state = state.state_name if req.state is None else req.state
    if settings == s.to_wire() and room_state == state.state_name:
        return Decision([])
    return Decision([{"t": "room", "state": room_state, "settings": settings,
                      "ts": ctx.now, **_by(actor)}])


def _ping(state: RoomState, actor: Actor, req: p.Ping, ctx: Context) -> Decision:
    return Decision([])


def _poll(state: RoomState, actor: Actor, req: p.OpenPoll, ctx: Context) -> Decision:
    if not state.open and actor.role not in CLOSED_ROOM_EXEMPT:
        raise ProtocolError(ErrorCode.ROOM_CLOSED, "the room is closed", req.id)
    decision = Decision(*polls.open_poll(state, actor, req, ctx))
    for text in (req.question, *req.options):  # the block list (polls are staff's: no hold)
        mod.screen(ctx, actor, text, req.id)
    return decision


def _ballot(state: RoomState, actor: Actor, req: p.Ballot, ctx: Context) -> Decision:
    return Decision(*polls.ballot(state, actor, req, ctx))


def _pollstate(state: RoomState, actor: Actor, req: p.SetPollState, ctx: Context
               ) -> Decision:
    return Decision(*polls.set_state(state, actor, req, ctx))


def _moderation(handler: Any) -> Any:
    """A handler of :mod:`livehub.moderation` as one of this table's."""
    def decide_it(state: RoomState, actor: Actor, req: p.Request, ctx: Context) -> Decision:
        out: mod.Outcome = handler(state, actor, req, ctx)
        return Decision(out.events, out.reply, seq=out.seq)
    return decide_it


_HANDLERS: Final[dict[type[p.Request], Any]] = {
    p.Post: _post, p.Ask: _ask, p.Vote: _vote, p.Answer: _answer, p.SetQState: _qstate,
    p.Pin: _pin, p.Unpin: _pin, p.Delete: _delete, p.Mute: _mute, p.Unmute: _unmute,
    p.Ban: _ban, p.Unban: _ban, p.Settings: _settings, p.Ping: _ping,
    p.OpenPoll: _poll, p.Ballot: _ballot, p.SetPollState: _pollstate,
    p.Report: _moderation(mod.report), p.Resolve: _moderation(mod.resolve),
    p.Release: _moderation(mod.release), p.React: _moderation(mod.react),
}


# --- apply -------------------------------------------------------------------


def apply(state: RoomState, ev: Event) -> RoomState:
    """Fold one committed event (carrying its ``seq``) into ``state``, in place.

    Deterministic and total: it reads only its arguments, and an event that no
    longer fits the state (it raced with another through a second process)
    is folded as far as it still makes sense.
    """
    state.seq = ev["seq"]
    fold = _FOLDS.get(ev["t"])
    if fold is not None and events.problem(ev) is None:
        # (an event whose keys do not fit its type's definition only takes its seq)
        fold(state, ev)
    return state


def _note_guest(state: RoomState, ev: Event) -> None:
    addr = ev.get(ADDR)
    if addr is not None:
        state.guest_addrs[ev["uid"]] = addr


def _fold_msg(state: RoomState, ev: Event) -> None:
    if ev.get("held") or "by" in ev:  # held, or released by a moderator
        if not mod.admit_msg(state, ev):
            if ev.get("held"):
                state.names[ev["uid"]] = ev["name"]
                state.last_post[ev["uid"]] = ev["ts"]
                _note_guest(state, ev)
            return
    else:
        state.last_post[ev["uid"]] = ev["ts"]
    state.messages[ev["mid"]] = ev
    state.names[ev["uid"]] = ev["name"]
    _note_guest(state, ev)
    if len(state.messages) > state.max_messages:
        oldest = next(iter(state.messages))
        del state.messages[oldest]
        state.pinned.pop(oldest, None)
        state.mod.forget_post(oldest)


def _fold_q(state: RoomState, ev: Event) -> None:
    state.names[ev["uid"]] = ev["name"]
    _note_guest(state, ev)
    state.questions[ev["qid"]] = Question(
        qid=ev["qid"], uid=ev["uid"], name=ev["name"], text=ev["text"], state=ev["state"],
        seq=ev["seq"], ts=ev["ts"], anonymous=bool(ev.get("anonymous")),
        guest=bool(ev.get("guest")), shown=None if ev["state"] == "pending" else ev["seq"],
        affiliation=ev.get("affiliation"),
    )


def _fold_vote(state: RoomState, ev: Event) -> None:
    q = state.questions.get(ev["qid"])
    _note_guest(state, ev)
    if q is None:
        return
    if ev["up"]:
        q.voters.add(ev["uid"])
    else:
        q.voters.discard(ev["uid"])


def _fold_answer(state: RoomState, ev: Event) -> None:
    q = state.questions.get(ev["qid"])
    if q is not None:
        q.answers.append(ev)


def _fold_qstate(state: RoomState, ev: Event) -> None:
    q = state.questions.get(ev["qid"])
    if q is None:
        return
    new = ev["state"]
    if new == "answering":
        # One question on stage: if a racing request left another there, move it on.
        current = state.questions.get(state.answering or "")
        if current is not None and current is not q and current.state == "answering":
            current.state = "answered"
        state.answering = q.qid
    elif state.answering == q.qid:
        state.answering = None
    q.state = new
    if q.shown is None and new in LIVE_QSTATES:
        q.shown = ev["seq"]


def _fold_pin(state: RoomState, ev: Event) -> None:
    if ev["mid"] in state.messages:
        state.pinned[ev["mid"]] = None


def _fold_unpin(state: RoomState, ev: Event) -> None:
    state.pinned.pop(ev["mid"], None)


def _fold_del(state: RoomState, ev: Event) -> None:
    if "mid" in ev:
        mid = ev["mid"]
        state.messages.pop(mid, None)
        state.pinned.pop(mid, None)
        state.mod.forget_post(mid)
        state.deleted.add(mid)
    else:
        qid = ev["qid"]
        state.questions.pop(qid, None)
        state.deleted.add(qid)
        if state.answering == qid:
            state.answering = None


def _fold_mute(state: RoomState, ev: Event) -> None:
    state.mutes[ev["uid"]] = ev["until"]
    if ev.get("private"):
        state.private_mutes.add(ev["uid"])
    else:
        state.private_mutes.discard(ev["uid"])


def _fold_unmute(state: RoomState, ev: Event) -> None:
    state.mutes.pop(ev["uid"], None)
    state.private_mutes.discard(ev["uid"])


def _fold_ban(state: RoomState, ev: Event) -> None:
    state.bans.add(ev["uid"])
    addr = ev.get(ADDR)
    if addr is not None:
        state.banned_addrs.setdefault(addr, set()).add(ev["uid"])


def _fold_unban(state: RoomState, ev: Event) -> None:
    uid = ev["uid"]
    state.bans.discard(uid)
    for addr in [a for a, uids in state.banned_addrs.items() if uid in uids]:
        uids = state.banned_addrs[addr]
        uids.discard(uid)
        if not uids:
            del state.banned_addrs[addr]


def address_banned(state: RoomState, addr: str | None) -> bool:
    """Whether new guest identities from this address key are refused in the room."""
    return addr is not None and addr in state.banned_addrs


def _fold_room(state: RoomState, ev: Event) -> None:
    settings = ev["settings"]
    state.settings = RoomSettings(
        slow_mode=int(settings["slow_mode"]), guests=bool(settings["guests"]),
        premoderate=bool(settings["premoderate"]),
    )
    state.open = ev["state"] == "open"


_FOLDS: Final[dict[str, Any]] = {
    "msg": _fold_msg, "q": _fold_q, "vote": _fold_vote, "answer": _fold_answer,
    "qstate": _fold_qstate, "pin": _fold_pin, "unpin": _fold_unpin, "del": _fold_del,
    "mute": _fold_mute, "unmute": _fold_unmute, "ban": _fold_ban, "unban": _fold_unban,
    "room": _fold_room,
    "poll": polls.fold_poll, "ballot": polls.fold_ballot, "pollstate": polls.fold_pollstate,
    "report": mod.fold_report, "resolved": mod.fold_resolved, "react": mod.fold_react,
}


# --- views -------------------------------------------------------------------


# --- views: the one place that decides what each audience may know ------------------
#
# Every frame a client gets is built here: live events (`view`), replays (`replay`),
# the welcome's history, pinned posts and questions. Rules:
# * an anonymous asker is named only in moderators' copies (`q`; and `answer`,
#   `qstate`, `votes` never carry an asker at all);
# * a moderation act reaches participants and speakers as what happened, never with
#   the name of the person acted on (`_ACT_KEYS`); one made through an anonymous
#   question (`private`) reaches moderators only, as do bans;
# * a guest's address key reaches no one.


def _public(ev: Event) -> Event:
    return {k: v for k, v in ev.items() if k not in _INTERNAL_KEYS and k != ADDR}


def client_copy(ev: Event) -> Event:
    """``ev`` without the keys that no client may have (a guest's address key)."""
    if ADDR not in ev:
        return ev
    return {k: v for k, v in ev.items() if k != ADDR}


def _act_view(ev: Event, keys: frozenset[str]) -> Event:
    return {k: v for k, v in ev.items() if k in keys}


def question_view(q: Question, role: Role, *, seq: int | None = None,
                  ts: int | None = None, with_answers: bool = False) -> Event:
    """A question as a ``q`` event for ``role`` (anonymous askers hidden but from moderators)."""
    hide = q.anonymous and role is not Role.MODERATOR
    ev: Event = {"t": "q", "qid": q.qid, "uid": None if hide else q.uid,
                 "name": ANONYMOUS_NAME if hide else q.name, "text": q.text,
                 "votes": q.votes, "state": q.state, "seq": q.seq if seq is None else seq,
                 "ts": q.ts if ts is None else ts}
    if q.anonymous:
        ev["anonymous"] = True
    if q.guest and not hide:
        ev["guest"] = True
    if q.affiliation and not hide:
        ev["affiliation"] = q.affiliation
    if with_answers:
        ev["answers"] = [_public(a) for a in q.answers]
    return ev


def _unseen(q: Question, seq: int) -> bool:
    """True when participants had not met ``q`` by ``seq`` (so may not hear of it)."""
    return q.shown is None or seq < q.shown


def votes_event(q: Question, seq: int, ts: int) -> Event:
    return {"t": "votes", "qid": q.qid, "votes": q.votes, "seq": seq, "ts": ts}


def view(state: RoomState, ev: Event, role: Role, uid: str | None = None) -> Event | None:
    """What ``role`` (the person ``uid``, when known) is sent of the committed ``ev``.

    Called after ``ev`` was applied; None: nothing. ``vote`` and ``react`` events
    give None: the hub sends coalesced ``votes`` and ``reactions`` events instead
    (see :func:`votes_event` and :func:`livehub.moderation.reactions_event`).
    Reports, held posts and their releases follow :func:`livehub.moderation.view`.
    An event whose keys do not fit its type (``livehub.events``) gives None too:
    ``apply`` folded only its seq.
    """
    if events.problem(ev) is not None:
        return None
    t = ev["t"]
    if mod.is_private(ev):
        seen = mod.view(state, ev, role, uid)
        return None if seen is None else client_copy(seen)
    if t == "msg":
        return client_copy(ev)
    staff = role.is_staff
    moderator = role is Role.MODERATOR
    if t == "q":
        if ev["state"] == "pending" and not staff:
            return None
        if ev.get("anonymous") and not moderator:
            hidden = client_copy(dict(ev, uid=None, name=ANONYMOUS_NAME))
            hidden.pop("guest", None)
            hidden.pop("affiliation", None)
            return hidden
        return client_copy(ev)
    if t in ("vote", "ballot", "react"):
        return None  # the hub sends coalesced ``votes`` / ``tally`` / ``reactions`` instead
    if t == "qstate":
        if not staff:
            q = state.questions.get(ev["qid"])
            if q is None:  # removed meanwhile (a race): nothing left to tell them
                return None
            if q.shown == ev["seq"]:
                # Approval (or a declined question reinstated): participants meet the
                # question for the first time.
                return question_view(q, role, seq=ev["seq"], ts=ev["ts"])
            if _unseen(q, ev["seq"]):
                return None
    if t == "answer":
        q = state.questions.get(ev["qid"])
        if q is None or (not staff and _unseen(q, ev["seq"])):
            return None
        return client_copy(ev)
    if t in ("ban", "unban") or (t in ("mute", "unmute") and ev.get("private")):
        return client_copy(ev) if moderator else None
    if t == "del" and ev.get("pending") and not staff:
        return None
    if moderator:
        return client_copy(ev)
    keys = _ACT_KEYS.get(t)
    return _public(ev) if keys is None else _act_view(ev, keys)


def history(state: RoomState, limit: int = HISTORY_WINDOW) -> list[Event]:
    """The latest posts, oldest first (deleted ones are gone from ``messages``)."""
    if limit <= 0:
        return []
    msgs = state.messages
    if len(msgs) <= limit:
        return [client_copy(ev) for ev in msgs.values()]
    # From the end: no copy of a long room's every post for each welcome.
    return [client_copy(ev) for ev in reversed(list(islice(reversed(msgs.values()), limit)))]


def pinned(state: RoomState) -> list[Event]:
    return [client_copy(state.messages[mid]) for mid in state.pinned
            if mid in state.messages]


def ranked_questions(state: RoomState, role: Role) -> list[Question]:
    """Live questions for ``role``, most votes first, then oldest first."""
    allowed = LIVE_QSTATES | {"pending"} if role.is_staff else LIVE_QSTATES
    qs = [q for q in state.questions.values() if q.state in allowed]
    qs.sort(key=lambda q: (-q.votes, q.seq))
    return qs


def questions_view(state: RoomState, role: Role) -> list[Event]:
    return [question_view(q, role, with_answers=True) for q in ranked_questions(state, role)]


def replay(state: RoomState, events: Iterable[Event], role: Role,
           uid: str | None = None) -> list[Event]:
    """The events after a client's ``since``, as ``role`` (the person ``uid``) sees them now.

    Individual votes fold into one ``votes`` event per question, at the place
    of its last change and with the current count; reactions likewise into one
    ``reactions`` event per post. Removed posts and questions are left out.
    """
    evs = list(events)
    last_vote: dict[str, int] = {}
    last_ballot: dict[str, int] = {}
    last_react: dict[str, int] = {}
    for ev in evs:
        if ev["t"] == "vote":
            last_vote[ev["qid"]] = ev["seq"]
        elif ev["t"] == "ballot":
            last_ballot[ev["pid"]] = ev["seq"]
        elif ev["t"] == "react":
            last_react[ev["mid"]] = ev["seq"]
    out: list[Event] = []
    for ev in evs:
        t = ev["t"]
        if t == "react":
            if last_react.get(ev["mid"]) == ev["seq"] and ev["mid"] in state.messages:
                out.append(mod.reactions_event(state, ev["mid"], ev["seq"], ev["ts"]))
            continue
        if t == "ballot":  # ballots fold into one ``tally`` per poll, as votes do
            poll = state.polls.get(ev["pid"])
            if last_ballot.get(ev["pid"]) == ev["seq"] and poll is not None:
                out.append(polls.tally_event(poll, ev["seq"], ev["ts"]))
            continue
        if t == "vote":
            q = state.questions.get(ev["qid"])
            if (last_vote.get(ev["qid"]) == ev["seq"] and q is not None
                    and (role.is_staff or not _unseen(q, ev["seq"]))):
                out.append(votes_event(q, ev["seq"], ev["ts"]))
            continue
        if (t in ("msg", "pin", "unpin") and ev["mid"] in state.deleted) or (
                t in ("q", "answer", "qstate") and ev["qid"] in state.deleted):
            continue
        v = view(state, ev, role, uid)
        if v is not None:
            out.append(v)
    return out
