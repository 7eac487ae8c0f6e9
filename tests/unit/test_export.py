"""Transcripts (livehub.export) from logs made by the real room core, without I/O."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from livehub import export
from livehub import protocol as p
from livehub import room as core
from livehub.export import RoomLog
from livehub.programme import Session
from livehub.roles import Role

T0 = int(datetime(2009, 4, 6, 9, 0, tzinfo=UTC).timestamp() * 1000)

SESSION = Session(
    slug="lobby", title="Budget *consultation* [draft]",
    starts=datetime(2009, 4, 6, 9, 0, tzinfo=UTC), ends=datetime(2009, 4, 6, 10, 0, tzinfo=UTC),
    speakers=("Cllr Jo Speaker",), premoderate=False,
)

ANN = core.Actor("u-ann", "Ann", Role.PARTICIPANT)
BOB = core.Actor("u-bob", "Bob", Role.PARTICIPANT)
CAT = core.Actor("g-cat", "Cat", Role.PARTICIPANT, guest=True)
JO = core.Actor("u-jo", "Cllr Jo", Role.SPEAKER)
MOD = core.Actor("u-mod", "Mo Derator", Role.MODERATOR)


class Room:
    """A room driven through decide/apply, its log kept as a broker would keep it."""

    def __init__(self, session: Session = SESSION) -> None:
        self.state = core.RoomState(room=session.slug, title=session.title,
                                    settings=core.RoomSettings(
                                        slow_mode=session.slow_mode, guests=session.guests,
                                        premoderate=session.premoderate))
        self.log: list[dict[str, Any]] = []
        self.now = T0
        self.ids = 0

    def do(self, actor: core.Actor, frame: dict[str, Any], seconds: int = 60
           ) -> dict[str, Any]:
        self.now += seconds * 1000
        self.ids += 1
        req = p.to_request(frame)
        decision = core.decide(self.state, actor, req,
                               core.Context(now=self.now, new_id=f"x{self.ids}"))
        for ev in decision.events:
            ev["seq"] = len(self.log) + 1
            self.log.append(ev)
            core.apply(self.state, ev)
        return decision.reply

    def room_log(self, **kw: Any) -> RoomLog:
        return RoomLog(room="lobby", events=self.log, epoch="e1", session=SESSION,
                       conference="Test Conference", **kw)


def scripted() -> Room:
    """Posts, a reply, questions with votes and answers, stage, a pin, a mute, removals."""
    r = Room()
    hello = r.do(ANN, {"t": "post", "text": "Hello all"})["mid"]          # 09:01
    r.do(BOB, {"t": "post", "text": "Hi Ann", "reply_to": hello})           # 09:02
    rude = r.do(BOB, {"t": "post", "text": "SECRET RUDE WORDS"})["mid"]     # 09:03
    rules = r.do(MOD, {"t": "post", "text": "Please be kind"})["mid"]       # 09:04
    r.do(MOD, {"t": "pin", "mid": rules})                                   # 09:05
    q_bins = r.do(ANN, {"t": "ask", "text": "When are bins collected?"})["qid"]
    q_parks = r.do(CAT, {"t": "ask", "text": "More parks?"})["qid"]
    q_anon = r.do(BOB, {"t": "ask", "text": "Who pays?", "anonymous": True})["qid"]
    q_gone = r.do(BOB, {"t": "ask", "text": "REMOVED QUESTION"})["qid"]
    for who in (ANN, BOB, CAT):
        r.do(who, {"t": "vote", "qid": q_parks, "up": True}, 1)
    r.do(ANN, {"t": "vote", "qid": q_anon, "up": True}, 1)
    r.do(JO, {"t": "qstate", "qid": q_bins, "state": "answering"})
    r.do(JO, {"t": "answer", "qid": q_bins, "text": "Every Tuesday."})
    r.do(JO, {"t": "qstate", "qid": q_bins, "state": "answered"})
    r.do(MOD, {"t": "mute", "uid": "u-bob", "seconds": 300})
    r.do(MOD, {"t": "del", "mid": rude})
    r.do(MOD, {"t": "del", "qid": q_gone})
    r.do(CAT, {"t": "post", "text": "# not a heading <b>x</b> [link](http://e.x)"})
    return r


def test_markdown_has_the_session_questions_pins_chat_and_moderation_in_order() -> None:
    md = export.to_markdown(scripted().room_log())
    assert md.startswith("# Budget \\*consultation\\* \\[draft\\]\n")
    assert "Monday 6 April 2009, 09:00 to 10:00 UTC" in md
    assert "Cllr Jo Speaker" in md and "Test Conference" in md
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == ["## Questions", "## Pinned posts", "## Chat", "## Moderation"]
    questions = md.split("## Questions")[1].split("## Pinned posts")[0]
    # On stage first, then by votes (3, 1), the removed one left out and counted.
    order = [questions.index(t) for t in ("When are bins collected?", "More parks?",
                                          "Who pays?")]
    assert order == sorted(order)
    assert "REMOVED QUESTION" not in md
    assert "1 question was removed" in questions
    assert "3 votes" in questions and "1 vote;" in questions
    assert "Answer from Cllr Jo (speaker) at 09:" in questions and "Every Tuesday." in questions
    assert "taken on stage at" in questions
    assert "Cat (guest)" in questions
    anon = questions[questions.index("Who pays?"):]
    assert "Asked anonymously" in anon and "Bob" not in anon.split("\n\n")[0]
    pinned = md.split("## Pinned posts")[1].split("## Chat")[0]
    assert "Mo Derator (moderator): Please be kind" in pinned
    chat = md.split("## Chat")[1].split("## Moderation")[0]
    lines = [line for line in chat.splitlines() if line.startswith("- ")]
    assert "Ann: Hello all" in lines[0]
    # Bob asked anonymously in this session: the minutes name him nowhere.
    assert "a participant, replying to Ann at 09:01:00: Hi Ann" in lines[1]
    assert "Bob" not in md and "u-bob" not in md
    assert lines[2].endswith(export.REMOVED_BY_MODERATOR)
    assert "SECRET RUDE WORDS" not in md
    # User text cannot make headings, HTML or links.
    assert "\\# not a heading \\<b\\>x\\</b\\> \\[link\\](http://e.x)" in lines[4]
    moderation = md.split("## Moderation")[1]
    mod_lines = [line for line in moderation.splitlines() if line.startswith("- ")]
    assert mod_lines[0].startswith("- 09:05:00 Mo Derator (u-mod) pinned a post by Mo Derator")
    # Bob asked a question anonymously in this session: the Moderation section, where
    # naming him could unmask it, calls him "a participant" every time.
    assert "muted a participant for 5 minutes (until " in mod_lines[1]
    assert "removed a post by a participant from 09:03:00" in mod_lines[2]
    assert "removed a question from a participant" in mod_lines[3]
    assert "u-bob" not in moderation and "Bob" not in moderation


def test_anonymous_asker_never_named_in_the_markdown() -> None:
    r = Room()
    q = r.do(ANN, {"t": "ask", "text": "Anonymous one", "anonymous": True})["qid"]
    q2 = r.do(BOB, {"t": "ask", "text": "Withdrawn", "anonymous": True})["qid"]
    r.do(BOB, {"t": "del", "qid": q2})
    md = export.to_markdown(r.room_log())
    assert "Ann" not in md and "Bob" not in md and "u-bob" not in md
    assert "The asker of an anonymous question withdrew it" in md
    r.do(MOD, {"t": "del", "qid": q})
    md = export.to_markdown(r.room_log())
    assert "removed a question from a participant" in md
    assert "Ann" not in md and "u-ann" not in md
    assert "No questions to show." in md and "2 questions were removed" in md
    assert "Anonymous one" not in md


def test_own_removal_pins_bans_and_settings_are_recorded() -> None:
    r = Room()
    mid = r.do(ANN, {"t": "post", "text": "oops"})["mid"]
    keep = r.do(ANN, {"t": "post", "text": "keep me"})["mid"]
    r.do(ANN, {"t": "del", "mid": mid})
    r.do(JO, {"t": "pin", "mid": keep})
    r.do(JO, {"t": "unpin", "mid": keep})
    r.do(MOD, {"t": "ban", "uid": "u-ann"})
    r.do(MOD, {"t": "unban", "uid": "u-ann"})
    r.do(MOD, {"t": "settings", "slow_mode": 10, "state": "closed"})
    md = export.to_markdown(r.room_log())
    assert export.REMOVED_BY_AUTHOR in md and "oops" not in md
    assert "Ann (u-ann) removed their own post" in md
    assert "Cllr Jo (u-jo) pinned a post by Ann (u-ann)" in md
    assert "Cllr Jo (u-jo) unpinned" in md
    assert "No posts were pinned at the end." in md
    assert "banned Ann (u-ann) from the room" in md and "lifted the ban on Ann" in md
    assert "closed the room and set slow mode to 10 s" in md


def test_premoderated_questions_never_approved_are_not_listed() -> None:
    r = Room(Session(slug="lobby", title="P", starts=None, ends=None, speakers=(),
                     premoderate=True))
    r.do(ANN, {"t": "ask", "text": "never approved"})
    ok = r.do(BOB, {"t": "ask", "text": "approved one"})["qid"]
    r.do(MOD, {"t": "qstate", "qid": ok, "state": "open"})
    md = export.to_markdown(RoomLog(room="lobby", events=r.log))
    assert "never approved" not in md and "approved one" in md
    assert "1 question awaiting approval or declined" in md
    assert "approved a question from Bob (u-bob)" in md
    assert "not scheduled" in md


def test_announcements_are_marked() -> None:
    r = Room()
    r.do(MOD, {"t": "post", "text": "Lunch is at one"})
    r.log[-1]["announcement"] = True
    md = export.to_markdown(r.room_log())
    assert "Announcement from Mo Derator (moderator): Lunch is at one" in md


def test_empty_and_trimmed_logs() -> None:
    md = export.to_markdown(RoomLog(room="lobby", events=[]))
    assert md.startswith("# lobby\n") and "Nobody posted." in md
    assert "No moderator actions." in md and "No questions were asked." in md
    r = scripted()
    md = export.to_markdown(r.room_log(complete=False))
    assert "no longer reaches back" in md


def test_multiline_text_stays_inside_its_list_item() -> None:
    r = Room()
    r.do(ANN, {"t": "post", "text": "first line\n- not a list\n\n2. nor this"})
    chat = export.to_markdown(r.room_log()).split("## Chat")[1]
    assert "first line  \n  \\- not a list  \n  2\\. nor this" in chat


def test_csv_has_every_event_with_seq_first() -> None:
    r = scripted()
    r.do(ANN, {"t": "post", "text": "=SUM(A1:A2)"})
    text = export.to_csv(r.room_log())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.startswith("seq,ts,type,uid,name")
    assert [int(row["seq"]) for row in rows] == list(range(1, len(r.log) + 1))
    assert [row["type"] for row in rows] == [ev["t"] for ev in r.log]
    assert rows[0]["ts"] == "2009-04-06T09:01:00.000Z"
    reply = rows[1]
    assert reply["reply_to"] == r.log[0]["mid"] and reply["text"] == "Hi Ann"
    deleted = next(row for row in rows if row["type"] == "del" and row["mid"])
    assert deleted["by"] == "u-mod" and deleted["of"] == "u-bob"
    mute = next(row for row in rows if row["type"] == "mute")
    assert mute["uid"] == "u-bob" and mute["until"].endswith("Z")
    anon = next(row for row in rows if row["type"] == "q" and row["text"] == "Who pays?")
    assert json.loads(anon["extra"])["anonymous"] is True
    assert rows[-1]["text"] == "'=SUM(A1:A2)"  # no formula in a spreadsheet


def test_json_has_header_and_every_event() -> None:
    r = scripted()
    doc = json.loads(export.to_json(r.room_log()))
    assert doc["room"] == "lobby" and doc["title"] == SESSION.title and doc["epoch"] == "e1"
    assert doc["complete"] is True and doc["count"] == len(r.log)
    assert doc["starts"] == "2009-04-06T09:00:00+00:00" and doc["speakers"] == ["Cllr Jo Speaker"]
    assert [ev["seq"] for ev in doc["events"]] == list(range(1, len(r.log) + 1))
    assert doc["events"] == r.log


def test_render_dispatch_and_names() -> None:
    log = scripted().room_log()
    for fmt in export.FORMATS:
        assert export.render(fmt, log)
        assert export.filename("lobby", fmt) == f"lobby-transcript.{fmt}"
        assert fmt in export.MEDIA_TYPES
    with pytest.raises(ValueError, match="unknown transcript format"):
        export.render("pdf", log)


def test_pure_the_log_is_not_changed() -> None:
    r = scripted()
    before = json.dumps(r.log, sort_keys=True)
    for fmt in export.FORMATS:
        export.render(fmt, r.room_log())
    assert json.dumps(r.log, sort_keys=True) == before


def test_session_time_across_days_and_without_end() -> None:
    s = Session(slug="x", title="X", starts=datetime(2009, 4, 6, 23, 0, tzinfo=UTC),
                ends=datetime(2009, 4, 7, 1, 0, tzinfo=UTC), speakers=())
    assert export.session_time(s) == "Monday 6 April 2009 23:00 to Tuesday 7 April 2009 01:00 UTC"
    s2 = Session(slug="x", title="X", starts=datetime(2009, 4, 6, 23, 0, tzinfo=UTC), ends=None,
                 speakers=())
    assert export.session_time(s2) == "Monday 6 April 2009, from 23:00 UTC"


@pytest.mark.parametrize("name", ["Ann\n# Heading", "Ann\r\n- item", "\u202eevil\u202c",
                                  "Ann\u2066x\u2069"])
def test_names_from_old_logs_stay_one_line_in_the_markdown(name: str) -> None:
    r = Room()
    odd = core.Actor("u-odd", name, Role.PARTICIPANT)
    r.do(odd, {"t": "post", "text": "hello"})
    r.do(MOD, {"t": "mute", "uid": "u-odd", "seconds": 60})
    md = export.to_markdown(r.room_log())
    for line in md.splitlines():
        assert not line.startswith(("# Heading", "- item")), line
    assert not any(c in md for c in "\u202e\u202c\u2066\u2069")
