"""Live polls: the pure rules for ``poll``, ``ballot`` and ``pollstate``.

Part of the room core (:mod:`livehub.room` calls these from its handler and
fold tables): no I/O, no clock. Ballots are kept per ``uid`` so that a new
ballot replaces the sender's last and every replica folds the same counts;
no view ever shows who chose what (``ballot`` events reach no client, only
``tally`` events with the counts do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError, has_forbidden_control

if TYPE_CHECKING:
    from livehub.room import Actor, Context, RoomState

Event = dict[str, Any]
Outcome = tuple[list[Event], dict[str, Any]]  # the events to commit, the ``ok``'s fields

MAX_QUESTION: Final = 300
MAX_OPTION: Final = 100
# A room's polls all go into every welcome: at most 50 polls of at most ~5 KB each
# keep it (and memory) small.
MAX_POLLS: Final = 50


@dataclass(slots=True)
class Poll:
    pid: str
    question: str
    options: list[str]
    multi: bool
    state: str  # "open" or "closed"
    seq: int
    ts: int
    ballots: dict[str, tuple[int, ...]] = field(default_factory=dict)  # uid -> choices
    counts: list[int] = field(default_factory=list)

    def wire(self) -> Event:
        """The poll as a ``poll`` event with its current state and exact counts."""
        return {"t": "poll", "pid": self.pid, "question": self.question,
                "options": list(self.options), "multi": self.multi, "state": self.state,
                "counts": list(self.counts), "seq": self.seq, "ts": self.ts}


def _text(value: str, what: str, limit: int, rid: str | None) -> None:
    if not value:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{what} is empty", rid)
    if len(value) > limit:
        raise ProtocolError(ErrorCode.TOO_LONG, f"{what} is over {limit} characters", rid)
    if has_forbidden_control(value):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{what} holds a control character", rid)


def _find(state: RoomState, pid: str, rid: str | None) -> Poll:
    poll = state.polls.get(pid)
    if poll is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no poll {pid}", rid)
    return poll


def open_poll(state: RoomState, actor: Actor, req: p.OpenPoll, ctx: Context) -> Outcome:
    _text(req.question, "the poll question", MAX_QUESTION, req.id)
    for number, option in enumerate(req.options, start=1):
        _text(option, f"option {number}", MAX_OPTION, req.id)
    if len(state.polls) >= MAX_POLLS:
        raise ProtocolError(ErrorCode.FORBIDDEN,
                            f"a room holds at most {MAX_POLLS} polls", req.id)
    ev: Event = {"t": "poll", "pid": ctx.new_id, "question": req.question,
                 "options": list(req.options), "multi": req.multi, "state": "open",
                 "counts": [0] * len(req.options), "ts": ctx.now,
                 "by": actor.uid, "by_name": actor.name}
    return [ev], {"pid": ctx.new_id}


def ballot(state: RoomState, actor: Actor, req: p.Ballot, ctx: Context) -> Outcome:
    poll = _find(state, req.pid, req.id)
    if poll.state != "open":
        raise ProtocolError(ErrorCode.POLL_CLOSED, "the poll is closed", req.id)
    choices = req.choices
    if any(c >= len(poll.options) for c in choices):
        raise ProtocolError(ErrorCode.BAD_FRAME,
                            f"choices must be option indexes 0 to {len(poll.options) - 1}",
                            req.id)
    if len(set(choices)) != len(choices):
        raise ProtocolError(ErrorCode.BAD_FRAME, "an option is chosen twice", req.id)
    if len(choices) > 1 and not poll.multi:
        raise ProtocolError(ErrorCode.BAD_FRAME, "this poll takes exactly one choice", req.id)
    chosen = tuple(sorted(choices))
    if poll.ballots.get(actor.uid) == chosen:
        return [], {"pid": poll.pid}  # the same ballot again: nothing changes
    ev: Event = {"t": "ballot", "pid": poll.pid, "uid": actor.uid, "choices": list(chosen),
                 "ts": ctx.now}
    return [ev], {"pid": poll.pid}


def set_state(state: RoomState, actor: Actor, req: p.SetPollState, ctx: Context) -> Outcome:
    poll = _find(state, req.pid, req.id)
    if poll.state == req.state:
        return [], {"pid": poll.pid}
    return [{"t": "pollstate", "pid": poll.pid, "state": req.state, "ts": ctx.now,
             "by": actor.uid, "by_name": actor.name}], {"pid": poll.pid}


# --- folds ---------------------------------------------------------------------------


def fold_poll(state: RoomState, ev: Event) -> None:
    options = [str(o) for o in ev["options"]]
    state.polls[ev["pid"]] = Poll(
        pid=ev["pid"], question=ev["question"], options=options, multi=bool(ev["multi"]),
        state=str(ev.get("state", "open")), seq=ev["seq"], ts=ev["ts"],
        counts=[0] * len(options))


def fold_ballot(state: RoomState, ev: Event) -> None:
    poll = state.polls.get(ev["pid"])
    if poll is None:
        return
    choices = tuple(c for c in ev["choices"] if 0 <= c < len(poll.options))
    old = poll.ballots.get(ev["uid"], ())
    for c in old:
        poll.counts[c] -= 1
    for c in choices:
        poll.counts[c] += 1
    poll.ballots[ev["uid"]] = choices


def fold_pollstate(state: RoomState, ev: Event) -> None:
    poll = state.polls.get(ev["pid"])
    if poll is not None:
        poll.state = ev["state"]


# --- views ---------------------------------------------------------------------------


def tally_event(poll: Poll, seq: int, ts: int) -> Event:
    return {"t": "tally", "pid": poll.pid, "counts": list(poll.counts), "seq": seq, "ts": ts}


def welcome_polls(state: RoomState) -> list[Event]:
    """Every poll of the room, oldest first, with its state and exact counts."""
    return [poll.wire() for poll in state.polls.values()]
