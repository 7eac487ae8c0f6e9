"""Reports, held posts and reactions: their state, rules, folds and views.

Part of the pure room core (:mod:`livehub.room` hooks these into its decide, fold
and view tables): no I/O, no clock, no randomness.

* Reports reach moderators only. A report's id is derived from (item, reporter),
  so a person's second report of an item, even one racing the first through
  another process, carries the first one's id; the fold keeps only the first.
* A post that matches the room's hold list is a ``msg`` with ``held: true``,
  kept apart from the room's messages and seen by moderators and its author
  only, until a ``release`` (a new ``msg`` with the same ``mid``) or a ``del``.
* Reactions are kept as reactor sets per emoji, so a repeated reaction folds
  to the same count on every process; clients get coalesced ``reactions`` counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import CLOSED_ROOM_EXEMPT, Role
from livehub.watchwords import Verdict

if TYPE_CHECKING:
    from livehub.room import Actor, Context, RoomState

Event = dict[str, Any]

NOTE_MAX: Final = 300
WELCOME_REPORTS: Final = 200
WELCOME_HELD: Final = 200
# Held posts' text in one welcome, at most (UTF-8: at most 4 bytes a character), so that
# the welcome stays far below its 1 MiB bound however long the held posts are.
WELCOME_HELD_CHARS: Final = 64_000
EMOJI: Final = ("thumbs_up", "heart", "laugh", "wow", "clap", "thanks")
# Who-did-what keys of a release (the moderator): only moderators' copies keep them.
_BY_KEYS: Final = ("by", "by_name")


@dataclass(slots=True)
class Report:
    rid: str
    kind: str  # "mid" or "qid"
    item: str
    reason: str
    note: str
    uid: str
    name: str
    seq: int
    ts: int
    count: int  # distinct reporters of the item when this one was made
    open: bool = True
    resolved_seq: int | None = None  # the event that resolved it (a racing repeat: not it)


@dataclass(slots=True)
class Moderation:
    """A room's reports, held posts and reactions (one field of RoomState)."""

    reports: dict[str, Report] = field(default_factory=dict)  # rid -> report
    open: dict[str, None] = field(default_factory=dict)  # open rids, oldest first
    reporters: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> uid -> rid
    held: dict[str, Event] = field(default_factory=dict)  # mid -> held msg, oldest first
    released: dict[str, int] = field(default_factory=dict)  # mid -> seq of its release
    reactions: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def forget_post(self, mid: str) -> None:
        self.held.pop(mid, None)
        self.reactions.pop(mid, None)


def report_id(kind: str, item: str, uid: str) -> str:
    """The id of ``uid``'s report of ``item``: the same on every process, every time."""
    digest = hashlib.sha256(f"report\x00{kind}\x00{item}\x00{uid}".encode()).hexdigest()
    return "r" + digest[:15]


# --- decide -------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What a handler here decided; the room core turns it into its Decision."""

    events: list[Event]
    reply: dict[str, Any] = field(default_factory=dict)
    seq: bool = True  # whether the ``ok`` carries a seq


def screen(ctx: Context, actor: Actor, text: str, rid: str | None) -> bool:
    """Refuse ``text`` on the block list (``blocked``); True when it is to be held."""
    words = ctx.words
    if words is None:
        return False
    verdict = words.check(text)
    if verdict is Verdict.BLOCK:
        raise ProtocolError(ErrorCode.BLOCKED, "this text contains words the organisers do "
                            "not allow here; nothing was published", rid)
    return verdict is Verdict.HOLD and not actor.role.is_staff


def _by(actor: Actor) -> dict[str, Any]:
    return {"by": actor.uid, "by_name": actor.name}


def report(state: RoomState, actor: Actor, req: p.Report, ctx: Context) -> Outcome:
    if len(req.note) > NOTE_MAX:
        raise ProtocolError(ErrorCode.TOO_LONG, f"note is over {NOTE_MAX} characters", req.id)
    if req.mid is not None:
        kind, item = "mid", req.mid
        if item not in state.messages:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no post {item}", req.id)
    else:
        assert req.qid is not None  # the protocol layer guarantees one of the two
        kind, item = "qid", req.qid
        q = state.questions.get(item)
        if q is None or (q.shown is None and not actor.role.is_staff and q.uid != actor.uid):
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no question {item}", req.id)
    reporters = state.mod.reporters.get(item, {})
    first = reporters.get(actor.uid)
    if first is not None:  # one report per person per item, resolved or not
        return Outcome([], {"rid": first}, seq=False)
    rid = report_id(kind, item, actor.uid)
    ev: Event = {"t": "report", "rid": rid, kind: item, "reason": req.reason,
                 "note": req.note, "uid": actor.uid, "name": actor.name,
                 "count": len(reporters) + 1, "ts": ctx.now}
    return Outcome([ev], {"rid": rid}, seq=False)


def resolve(state: RoomState, actor: Actor, req: p.Resolve, ctx: Context) -> Outcome:
    r = state.mod.reports.get(req.rid)
    if r is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no report {req.rid}", req.id)
    if not r.open:
        return Outcome([], seq=False)
    return Outcome([{"t": "resolved", "rid": r.rid, "ts": ctx.now, **_by(actor)}], seq=False)


def resolve_item(state: RoomState, item: str, actor: Actor, ctx: Context) -> list[Event]:
    """One ``resolved`` per open report of ``item`` (it is being removed)."""
    mod = state.mod
    rids = [rid for rid in mod.reporters.get(item, {}).values() if rid in mod.open]
    return [{"t": "resolved", "rid": rid, "ts": ctx.now, "removed": True, **_by(actor)}
            for rid in rids]


def release(state: RoomState, actor: Actor, req: p.Release, ctx: Context) -> Outcome:
    held = state.mod.held.get(req.mid)
    if held is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no held post {req.mid}", req.id)
    ev: Event = {k: v for k, v in held.items() if k not in ("held", "seq")}
    ev.update(ts=ctx.now, **_by(actor))
    return Outcome([ev], {"mid": req.mid})


def react(state: RoomState, actor: Actor, req: p.React, ctx: Context) -> Outcome:
    if not state.open and actor.role not in CLOSED_ROOM_EXEMPT:
        raise ProtocolError(ErrorCode.ROOM_CLOSED, "the room is closed", req.id)
    if req.mid not in state.messages:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no post {req.mid}", req.id)
    reactors = state.mod.reactions.get(req.mid, {}).get(req.emoji, set())
    if (actor.uid in reactors) == req.on:
        return Outcome([])  # already so: nothing to publish
    return Outcome([{"t": "react", "mid": req.mid, "emoji": req.emoji, "uid": actor.uid,
                     "on": req.on, "ts": ctx.now}])


# --- apply --------------------------------------------------------------------------


def admit_msg(state: RoomState, ev: Event) -> bool:
    """Fold a held post or a release; whether the caller folds ``ev`` as a posted msg."""
    mod = state.mod
    mid = ev["mid"]
    if ev.get("held"):
        mod.held[mid] = ev
        return False
    if "by" in ev:  # a release: only of a post still held (a racing del may have won)
        if mod.held.pop(mid, None) is None:
            return False
        mod.released[mid] = ev["seq"]
    return True


def fold_report(state: RoomState, ev: Event) -> None:
    kind = "mid" if "mid" in ev else "qid"
    item = ev[kind]
    present = item in state.messages if kind == "mid" else item in state.questions
    if not present:
        return  # removed meanwhile (a race): its reports were resolved by the del
    reporters = state.mod.reporters.setdefault(item, {})
    if ev["uid"] in reporters:
        return  # the same person's racing second report: the first one stands
    reporters[ev["uid"]] = ev["rid"]
    state.mod.reports[ev["rid"]] = Report(
        rid=ev["rid"], kind=kind, item=item, reason=ev["reason"], note=ev["note"],
        uid=ev["uid"], name=ev["name"], seq=ev["seq"], ts=ev["ts"], count=len(reporters))
    state.mod.open[ev["rid"]] = None


def fold_resolved(state: RoomState, ev: Event) -> None:
    r = state.mod.reports.get(ev["rid"])
    if r is not None and r.open:
        r.open = False
        r.resolved_seq = ev["seq"]
        state.mod.open.pop(r.rid, None)


def fold_react(state: RoomState, ev: Event) -> None:
    mid = ev["mid"]
    if mid not in state.messages:
        return
    by_emoji = state.mod.reactions.setdefault(mid, {})
    reactors = by_emoji.setdefault(ev["emoji"], set())
    if ev["on"]:
        reactors.add(ev["uid"])
    else:
        reactors.discard(ev["uid"])


# --- views --------------------------------------------------------------------------


def counts(state: RoomState, mid: str) -> dict[str, int]:
    """A post's reaction counts, zeros left out, in the contract's emoji order."""
    by_emoji = state.mod.reactions.get(mid)
    if not by_emoji:
        return {}
    return {e: len(by_emoji[e]) for e in EMOJI if by_emoji.get(e)}


def reactions_event(state: RoomState, mid: str, seq: int, ts: int) -> Event:
    return {"t": "reactions", "mid": mid, "counts": counts(state, mid), "seq": seq, "ts": ts}


def with_reactions(state: RoomState, msg: Event) -> Event:
    """``msg`` as the welcome shows it: with its exact reaction counts."""
    c = counts(state, msg["mid"])
    return {**msg, "reactions": c} if c else msg


def report_view(state: RoomState, r: Report, *, current: bool) -> Event:
    count = len(state.mod.reporters.get(r.item, {})) if current else r.count
    return {"t": "report", "rid": r.rid, r.kind: r.item, "reason": r.reason, "note": r.note,
            "uid": r.uid, "name": r.name, "count": count, "seq": r.seq, "ts": r.ts}


def view(state: RoomState, ev: Event, role: Role, uid: str | None = None) -> Event | None:
    """What ``role`` (the person ``uid``) sees of a report, held post or release event."""
    t = ev["t"]
    moderator = role is Role.MODERATOR
    if t == "report":
        r = state.mod.reports.get(ev["rid"])
        if not moderator or r is None or r.seq != ev["seq"]:
            return None  # moderators only; a racing repeat folded to nothing
        return report_view(state, r, current=False)
    if t == "resolved":
        r = state.mod.reports.get(ev["rid"])
        if not moderator or r is None or r.resolved_seq != ev["seq"]:
            return None  # moderators only; resolving twice (a race) publishes it once
        return ev
    if t == "msg":
        if ev.get("held"):
            return ev if moderator or (uid is not None and uid == ev["uid"]) else None
        if state.mod.released.get(ev["mid"]) != ev["seq"]:
            return None  # a release that lost a race with the post's removal
        return ev if moderator else {k: v for k, v in ev.items() if k not in _BY_KEYS}
    if t == "del":  # of a held post: its author and moderators only
        if moderator:
            return ev
        released = state.mod.released.get(ev["mid"])
        if released is not None and released < ev["seq"]:
            # A release won the race with this rejection: everyone had the post.
            return {k: v for k, v in ev.items() if k in ("t", "mid", "seq", "ts")}
        if uid is not None and uid == ev.get("of"):
            return {k: v for k, v in ev.items() if k in ("t", "mid", "held", "seq", "ts")}
        return None
    return None


def is_private(ev: Event) -> bool:
    """Whether ``view`` above decides who sees ``ev`` (else the room core's rules do)."""
    t = ev["t"]
    if t in ("report", "resolved"):
        return True
    if t == "msg":
        return bool(ev.get("held")) or "by" in ev
    return t == "del" and bool(ev.get("held"))


def owner(ev: Event) -> str | None:
    """The one person besides moderators who sees ``ev`` (a held post's author)."""
    if ev["t"] == "msg" and ev.get("held"):
        return str(ev["uid"])
    if ev["t"] == "del" and ev.get("held"):
        return str(ev.get("of"))
    return None


def welcome(state: RoomState) -> dict[str, Any]:
    """What a moderator's ``welcome`` adds: open reports (newest first) and held posts."""
    mod = state.mod
    reports: list[Event] = []
    for rid in reversed(mod.open):
        if len(reports) >= WELCOME_REPORTS:
            break
        reports.append(report_view(state, mod.reports[rid], current=True))
    held: list[Event] = []
    chars = 0
    for ev in mod.held.values():
        chars += len(ev["text"])
        if len(held) >= WELCOME_HELD or chars > WELCOME_HELD_CHARS:
            break
        held.append(ev)
    return {"reports": reports, "held": held}
