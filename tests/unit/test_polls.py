"""Polls in the pure room core and in the transcripts (livehub.polls, livehub.export)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from livehub import export
from livehub import room as core
from livehub.polls import MAX_POLLS
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import Role
from tests.unit.test_export import ANN, BOB, CAT, JO, MOD, Room


def poll_room(multi: bool = False) -> tuple[Room, str]:
    r = Room()
    pid = r.do(JO, {"t": "poll", "question": "Which *day*?", "options": ["Mon", "Tue", "Wed"],
                    "multi": multi})["pid"]
    return r, pid


def refused(r: Room, actor: core.Actor, frame: dict[str, Any]) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        r.do(actor, frame)
    return info.value.code


def test_ballots_replace_and_fold_to_exact_counts() -> None:
    r, pid = poll_room()
    r.do(ANN, {"t": "ballot", "pid": pid, "choices": [0]})
    r.do(BOB, {"t": "ballot", "pid": pid, "choices": [0]})
    r.do(ANN, {"t": "ballot", "pid": pid, "choices": [2]})
    before = len(r.log)
    r.do(ANN, {"t": "ballot", "pid": pid, "choices": [2]})  # the same again: no event
    assert len(r.log) == before
    assert r.state.polls[pid].counts == [1, 0, 1]
    # Folding the log afresh gives the same counts (every replica agrees).
    fresh = core.RoomState(room="lobby")
    for ev in r.log:
        core.apply(fresh, ev)
    assert fresh.polls[pid].counts == [1, 0, 1]


def test_rules_closed_unknown_and_bad_choices() -> None:
    r, pid = poll_room()
    assert refused(r, ANN, {"t": "ballot", "pid": "nope", "choices": [0]}) is ErrorCode.NOT_FOUND
    assert refused(r, ANN, {"t": "ballot", "pid": pid, "choices": [3]}) is ErrorCode.BAD_FRAME
    assert refused(r, ANN, {"t": "ballot", "pid": pid, "choices": [0, 1]}) is ErrorCode.BAD_FRAME
    assert refused(r, ANN, {"t": "ballot", "pid": pid, "choices": []}) is ErrorCode.BAD_FRAME
    assert refused(r, ANN, {"t": "pollstate", "pid": pid, "state": "closed"}) is (
        ErrorCode.FORBIDDEN)
    r.do(MOD, {"t": "pollstate", "pid": pid, "state": "closed"})
    assert refused(r, ANN, {"t": "ballot", "pid": pid, "choices": [0]}) is ErrorCode.POLL_CLOSED
    watcher = core.Actor("w-1", "Watcher", Role.PARTICIPANT, guest=True, watch=True)
    assert refused(r, watcher, {"t": "post", "text": "x"}) is ErrorCode.FORBIDDEN


def test_views_never_show_a_ballot_and_replay_folds_them_into_a_tally() -> None:
    r, pid = poll_room()
    since = r.state.seq
    for who, c in ((ANN, 0), (BOB, 1), (CAT, 1)):
        r.do(who, {"t": "ballot", "pid": pid, "choices": [c]})
    ballots = [ev for ev in r.log if ev["t"] == "ballot"]
    for role in Role:
        assert all(core.view(r.state, ev, role) is None for ev in ballots)
        out = core.replay(r.state, r.log[since:], role)
        assert out == [{"t": "tally", "pid": pid, "counts": [1, 2, 0],
                        "seq": r.state.seq, "ts": ballots[-1]["ts"]}]
    poll_ev = core.view(r.state, r.log[0], Role.SPEAKER)
    assert poll_ev is not None and "by" not in poll_ev


def test_markdown_lists_polls_and_transcripts_never_attribute_ballots() -> None:
    r, pid = poll_room(multi=True)
    r.do(ANN, {"t": "ballot", "pid": pid, "choices": [0, 2]})
    r.do(BOB, {"t": "ballot", "pid": pid, "choices": [2]})
    r.do(BOB, {"t": "ballot", "pid": pid, "choices": [1]})
    r.do(JO, {"t": "pollstate", "pid": pid, "state": "closed"})
    log = r.room_log()
    md = export.to_markdown(log)
    section = md.split("## Polls", 1)[1].split("## Pinned posts", 1)[0]
    assert "“Which \\*day\\*?”" in section
    assert "several answers allowed; closed; 2 people voted." in section
    assert "- Mon: 1 vote\n" in section and "- Tue: 1 vote\n" in section
    assert "- Wed: 1 vote\n" in section
    assert "Ann" not in section and "Bob" not in section
    events = json.loads(export.to_json(log))["events"]
    ballots = [e for e in events if e["t"] == "ballot"]
    assert [e["voter"] for e in ballots] == [1, 2, 2]
    assert all("uid" not in e for e in ballots)
    rows = export.to_csv(log).splitlines()
    assert not any("u-ann" in row or "u-bob" in row for row in rows if ",ballot," in row)
    assert "u-jo" in export.to_csv(log)  # who opened and closed it stays in the record
    assert "## Polls" not in export.to_markdown(Room().room_log())


def test_badges_reach_the_transcript_but_never_from_a_guest_or_an_anonymous_asker() -> None:
    r = Room()
    cllr = core.Actor("u-cllr", "Cllr Jo", Role.SPEAKER, affiliation="Eastmere *DC*")
    forged = core.Actor("g-x", "Guest X", Role.PARTICIPANT, guest=True, affiliation="Fake")
    r.do(cllr, {"t": "post", "text": "Hello"})
    r.do(forged, {"t": "post", "text": "Hi"})
    assert "affiliation" not in r.log[1]
    md = export.to_markdown(r.room_log())
    assert "Cllr Jo, Eastmere \\*DC\\* (speaker): Hello" in md
    assert "Fake" not in md
    # Once Cllr Jo asks anonymously, the minutes name them nowhere, badge included.
    r.do(cllr, {"t": "ask", "text": "Hidden?", "anonymous": True})
    md = export.to_markdown(r.room_log())
    assert "Cllr Jo, " not in md and "Eastmere" not in md  # (the programme lists "Cllr Jo Speaker")


def test_a_room_holds_a_bounded_number_of_polls() -> None:
    r = Room()
    for i in range(MAX_POLLS):
        r.do(JO, {"t": "poll", "question": f"Q{i}", "options": ["a", "b"]}, 1)
    assert refused(r, JO, {"t": "poll", "question": "one more", "options": ["a", "b"]}) is (
        ErrorCode.FORBIDDEN)
    assert len(r.state.polls) == MAX_POLLS
