"""Reports, held posts and reactions in the pure room core: folds of racing events."""

from __future__ import annotations

from itertools import count

import pytest

from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import Role
from livehub.room import Actor, Context, RoomState, apply, decide, replay, view
from livehub.watchwords import Matcher

WORDS = Matcher(block=["klonkwit"], hold=["gumphery"])
P = Actor("p1", "Pat", Role.PARTICIPANT)
Q = Actor("p2", "Quinn", Role.PARTICIPANT)
M = Actor("m1", "Mo", Role.MODERATOR)
_ids = count(1)


def ctx() -> Context:
    return Context(now=1_000, new_id=f"id{next(_ids)}", words=WORDS)


def commit(state: RoomState, events: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for ev in events:
        ev = {**ev, "seq": state.seq + 1}
        apply(state, ev)
        out.append(ev)
    return out


def run(state: RoomState, actor: Actor, req: p.Request) -> list[dict[str, object]]:
    return commit(state, decide(state, actor, req, ctx()).events)


def test_racing_repeat_reports_fold_to_one() -> None:
    s = RoomState("r")
    mid = run(s, P, p.Post(text="hello"))[0]["mid"]
    a = decide(s, Q, p.Report(mid=str(mid), reason="spam"), ctx())
    b = decide(s, Q, p.Report(mid=str(mid), reason="abuse"), ctx())  # decided before a folds
    assert a.reply == b.reply and a.seq is False
    first, second = commit(s, a.events + b.events)
    assert view(s, first, Role.MODERATOR) is not None
    assert view(s, second, Role.MODERATOR) is None
    assert len(s.mod.open) == 1


def test_a_report_racing_the_del_folds_to_nothing() -> None:
    s = RoomState("r")
    mid = str(run(s, P, p.Post(text="hello"))[0]["mid"])
    report = decide(s, Q, p.Report(mid=mid, reason="spam"), ctx())
    run(s, M, p.Delete(mid=mid))
    (ev,) = commit(s, report.events)
    assert view(s, ev, Role.MODERATOR) is None and not s.mod.open


def test_release_racing_a_rejection() -> None:
    s = RoomState("r")
    (held,) = run(s, P, p.Post(text="the gumphery"))
    mid = str(held["mid"])
    release = decide(s, M, p.Release(mid=mid), ctx())
    run(s, P, p.Delete(mid=mid))
    (ev,) = commit(s, release.events)
    assert mid not in s.messages
    assert all(view(s, ev, r) is None for r in Role)


def test_held_events_by_role_and_person() -> None:
    s = RoomState("r")
    (held,) = run(s, P, p.Post(text="gumphery"))
    assert view(s, held, Role.MODERATOR) == held
    assert view(s, held, Role.SPEAKER) is None
    assert view(s, held, Role.PARTICIPANT, "p1") == held
    assert view(s, held, Role.PARTICIPANT, "p2") is None
    assert [e["t"] for e in replay(s, [held], Role.PARTICIPANT, "p2")] == []
    assert [e["t"] for e in replay(s, [held], Role.PARTICIPANT, "p1")] == ["msg"]
    (released,) = run(s, M, p.Release(mid=str(held["mid"])))
    public = view(s, released, Role.PARTICIPANT)
    assert public is not None and "by" not in public and "held" not in public
    assert "by" in (view(s, released, Role.MODERATOR) or {})


@pytest.mark.parametrize("actor", [P, M])
def test_blocked_whoever_sends_it(actor: Actor) -> None:
    s = RoomState("r")
    with pytest.raises(ProtocolError) as info:
        decide(s, actor, p.Post(text="KLONKWIT"), ctx())
    assert info.value.code is ErrorCode.BLOCKED and s.seq == 0


def test_reactions_replay_as_one_event_per_post_with_the_current_counts() -> None:
    s = RoomState("r")
    mid = str(run(s, P, p.Post(text="hi"))[0]["mid"])
    evs = []
    for actor in (P, Q, M):
        evs += run(s, actor, p.React(mid=mid, emoji="heart"))
    evs += run(s, Q, p.React(mid=mid, emoji="heart", on=False))
    assert decide(s, P, p.React(mid=mid, emoji="heart"), ctx()).events == []
    out = replay(s, evs, Role.PARTICIPANT)
    assert out == [{"t": "reactions", "mid": mid, "counts": {"heart": 2},
                    "seq": evs[-1]["seq"], "ts": 1_000}]


def test_a_rejection_racing_a_release_reaches_everyone() -> None:
    s = RoomState("r")
    (held,) = run(s, P, p.Post(text="gumphery"))
    mid = str(held["mid"])
    rejection = decide(s, P, p.Delete(mid=mid), ctx())  # decided while still held
    run(s, M, p.Release(mid=mid))
    (ev,) = commit(s, rejection.events)[:1]
    assert ev["held"] is True and mid not in s.messages
    assert view(s, ev, Role.SPEAKER) == {"t": "del", "mid": mid, "seq": ev["seq"], "ts": 1_000}


def test_racing_resolutions_reach_moderators_once() -> None:
    s = RoomState("r")
    mid = str(run(s, P, p.Post(text="hello"))[0]["mid"])
    rid = str(run(s, Q, p.Report(mid=mid, reason="spam"))[0]["rid"])
    resolve = decide(s, M, p.Resolve(rid=rid), ctx())
    delete = decide(s, M, p.Delete(mid=mid), ctx())  # decided before the resolve folded
    first, = commit(s, resolve.events)
    later = commit(s, delete.events)
    assert view(s, first, Role.MODERATOR) is not None
    assert [e["t"] for e in later] == ["del", "resolved"]
    assert view(s, later[1], Role.MODERATOR) is None
