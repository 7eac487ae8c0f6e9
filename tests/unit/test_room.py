"""The room core with plain data: decide, apply, views, welcome helpers, replay.

No sockets and no broker: :class:`Room` imitates one by giving each decided
event the room's next ``seq`` and folding it with :func:`apply`.
"""

from __future__ import annotations

from typing import Any

import pytest

from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import Role
from livehub.room import (
    ANONYMOUS_NAME,
    HISTORY_WINDOW,
    Actor,
    Context,
    Decision,
    Event,
    RoomSettings,
    RoomState,
    apply,
    decide,
    history,
    pinned,
    question_view,
    questions_view,
    ranked_questions,
    replay,
    view,
    votes_event,
)

T0 = 1_700_000_000_000  # ms since the epoch

PAT = Actor("u-pat", "Pat", Role.PARTICIPANT)
PAM = Actor("u-pam", "Pam", Role.PARTICIPANT)
GUS = Actor("g-gus", "Gus", Role.PARTICIPANT, guest=True)
SAM = Actor("u-sam", "Sam", Role.SPEAKER)
MO = Actor("u-mo", "Mo", Role.MODERATOR)
MAX = Actor("u-max", "Max", Role.MODERATOR)

ROLES = (Role.PARTICIPANT, Role.SPEAKER, Role.MODERATOR)
INTERNAL = ("by", "by_name", "prev", "of", "of_name", "pending")


def snapshot(state: RoomState) -> dict[str, Any]:
    """Everything the fold produces, as plain comparable data."""
    return {
        "messages": [(mid, dict(ev)) for mid, ev in state.messages.items()],
        "pinned": list(state.pinned),
        "questions": [
            (q.qid, q.uid, q.name, q.text, q.state, q.seq, q.ts, q.anonymous, q.guest,
             sorted(q.voters), [dict(a) for a in q.answers], q.shown)
            for q in state.questions.values()
        ],
        "answering": state.answering,
        "mutes": dict(state.mutes),
        "bans": sorted(state.bans),
        "settings": state.settings.to_wire(),
        "open": state.open,
        "seq": state.seq,
        "last_post": dict(state.last_post),
        "names": dict(state.names),
        "deleted": sorted(state.deleted),
        "polls": [(poll.pid, poll.question, poll.options, poll.multi, poll.state, poll.seq,
                   poll.ts, dict(poll.ballots), list(poll.counts))
                  for poll in state.polls.values()],
    }


def fold(state: RoomState, events: list[Event]) -> list[Event]:
    """Commit ``events`` as a broker would: the next ``seq`` each, then apply."""
    committed = []
    for ev in events:
        ev = {**ev, "seq": state.seq + 1}
        apply(state, ev)
        committed.append(ev)
    return committed


class Room:
    """One room, a clock and a log: decide, commit, apply."""

    def __init__(self, **settings: Any) -> None:
        self.state = RoomState("r1", title="Room one", settings=RoomSettings(**settings))
        self.log: list[Event] = []
        self.now = T0
        self._ids = 0

    def ctx(self, max_text: int = 2000) -> Context:
        self._ids += 1
        return Context(now=self.now, new_id=f"id{self._ids}", max_text=max_text)

    def tick(self, ms: int) -> None:
        self.now += ms

    def decide(self, actor: Actor, req: p.Request, max_text: int = 2000) -> Decision:
        return decide(self.state, actor, req, self.ctx(max_text))

    def do(self, actor: Actor, req: p.Request, max_text: int = 2000) -> list[Event]:
        events = fold(self.state, self.decide(actor, req, max_text).events)
        self.log.extend(events)
        return events

    def refuse(self, actor: Actor, req: p.Request, code: ErrorCode,
               max_text: int = 2000) -> ProtocolError:
        before = snapshot(self.state)
        with pytest.raises(ProtocolError) as info:
            self.decide(actor, req, max_text)
        assert info.value.code == code, info.value.message
        assert info.value.rid == req.id
        assert snapshot(self.state) == before
        return info.value

    def post(self, actor: Actor, text: str = "hello", **kw: Any) -> str:
        (ev,) = self.do(actor, p.Post(text=text, **kw))
        return str(ev["mid"])

    def ask(self, actor: Actor, text: str = "why?", **kw: Any) -> str:
        (ev,) = self.do(actor, p.Ask(text=text, **kw))
        return str(ev["qid"])

    def one(self, actor: Actor, req: p.Request) -> Event:
        events = self.do(actor, req)
        assert len(events) == 1, events
        return events[0]

    def nothing(self, actor: Actor, req: p.Request) -> Decision:
        seq = self.state.seq
        decision = self.decide(actor, req)
        assert decision.events == []
        assert self.state.seq == seq
        return decision


# --- post ------------------------------------------------------------------------------


def test_post_emits_a_msg_event_with_author_text_and_time() -> None:
    room = Room()
    decision = room.decide(PAT, p.Post(text="Hello all", id="r1"))
    (ev,) = decision.events
    assert ev == {"t": "msg", "mid": "id1", "uid": PAT.uid, "name": "Pat",
                  "role": "participant", "text": "Hello all", "ts": T0}
    assert decision.reply == {"mid": "id1"}
    assert decision.ref == "id1"


def test_post_is_folded_into_messages_names_and_last_post() -> None:
    room = Room()
    mid = room.post(PAT, "hi")
    assert room.state.messages[mid]["text"] == "hi"
    assert room.state.messages[mid]["seq"] == 1
    assert room.state.seq == 1
    assert room.state.names[PAT.uid] == "Pat"
    assert room.state.last_post[PAT.uid] == T0


def test_post_text_is_kept_exactly_as_sent() -> None:
    room = Room()
    text = "  <b>x</b> \n\tcafe\u0301 "
    mid = room.post(PAT, text)
    assert room.state.messages[mid]["text"] == text


def test_post_at_max_text_is_accepted() -> None:
    room = Room()
    assert room.do(PAT, p.Post(text="x" * 2000))
    assert room.do(PAT, p.Post(text="y" * 10), max_text=10)


def test_post_over_max_text_is_too_long() -> None:
    room = Room()
    room.refuse(PAT, p.Post(text="x" * 2001, id="a"), ErrorCode.TOO_LONG)
    room.refuse(PAT, p.Post(text="y" * 11), ErrorCode.TOO_LONG, max_text=10)


def test_text_length_counts_code_points_not_bytes() -> None:
    room = Room()
    emoji = "\N{GRINNING FACE}"  # 4 bytes in UTF-8, 2 UTF-16 units, 1 code point
    assert room.do(PAT, p.Post(text=emoji * 2000))
    room.refuse(PAT, p.Post(text=emoji * 2001), ErrorCode.TOO_LONG)
    assert room.do(PAT, p.Post(text="\u00e9" * 5), max_text=5)


def test_post_empty_text_is_refused() -> None:
    Room().refuse(PAT, p.Post(text=""), ErrorCode.BAD_FRAME)


def test_post_reply_to_an_existing_post_carries_reply_to() -> None:
    room = Room()
    mid = room.post(PAT)
    ev = room.one(PAM, p.Post(text="re", reply_to=mid))
    assert ev["reply_to"] == mid


def test_post_without_reply_to_has_no_reply_to_key() -> None:
    room = Room()
    assert "reply_to" not in room.one(PAT, p.Post(text="x"))


def test_post_reply_to_unknown_post_is_not_found() -> None:
    Room().refuse(PAT, p.Post(text="re", reply_to="nope"), ErrorCode.NOT_FOUND)


def test_post_reply_to_deleted_post_is_not_found() -> None:
    room = Room()
    mid = room.post(PAT)
    room.do(PAT, p.Delete(mid=mid))
    room.refuse(PAM, p.Post(text="re", reply_to=mid), ErrorCode.NOT_FOUND)


def test_guest_post_is_flagged_guest() -> None:
    room = Room()
    assert room.one(GUS, p.Post(text="hi"))["guest"] is True
    assert "guest" not in room.one(PAT, p.Post(text="hi"))


def test_closed_room_refuses_participant_post() -> None:
    room = Room()
    room.state.open = False
    room.refuse(PAT, p.Post(text="hi"), ErrorCode.ROOM_CLOSED)


def test_closed_room_refuses_speaker_post() -> None:
    room = Room()
    room.state.open = False
    room.refuse(SAM, p.Post(text="hi"), ErrorCode.ROOM_CLOSED)


def test_closed_room_lets_moderators_post() -> None:
    room = Room()
    room.state.open = False
    assert room.one(MO, p.Post(text="we are closed"))["t"] == "msg"


def test_muted_until_lifted_is_refused_with_muted() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid))
    err = room.refuse(PAT, p.Post(text="hi", id="x"), ErrorCode.MUTED)
    assert "muted" in err.message


def test_timed_mute_refuses_before_until() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid, seconds=60))
    room.tick(59_999)
    room.refuse(PAT, p.Post(text="hi"), ErrorCode.MUTED)


def test_timed_mute_ends_at_until_without_any_new_event() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid, seconds=60))
    seq = room.state.seq
    room.tick(60_000)
    assert room.do(PAT, p.Post(text="free at until"))
    room.tick(1)
    assert room.do(PAT, p.Post(text="free after"))
    assert room.state.seq == seq + 2  # only the two posts


def test_mute_only_concerns_the_muted_user() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid))
    assert room.do(PAM, p.Post(text="still here"))


def test_unmute_lifts_an_until_lifted_mute() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid))
    room.do(MO, p.Unmute(uid=PAT.uid))
    assert room.do(PAT, p.Post(text="back"))


def test_slow_mode_refuses_a_participant_within_n_seconds() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    room.tick(9_999)
    err = room.refuse(PAT, p.Post(text="again"), ErrorCode.SLOW_MODE)
    assert "wait 1 s" in err.message


def test_slow_mode_message_says_how_long_to_wait() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    room.tick(2_500)
    err = room.refuse(PAT, p.Post(text="again"), ErrorCode.SLOW_MODE)
    assert "wait 8 s" in err.message


def test_slow_mode_allows_a_participant_after_n_seconds() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    room.tick(10_000)
    assert room.do(PAT, p.Post(text="again"))


def test_slow_mode_counts_from_the_last_accepted_post() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    room.tick(5_000)
    room.refuse(PAT, p.Post(text="too soon"), ErrorCode.SLOW_MODE)
    room.tick(5_000)
    assert room.do(PAT, p.Post(text="now"))


def test_slow_mode_is_per_user() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    assert room.do(PAM, p.Post(text="me too"))


def test_slow_mode_does_not_limit_questions() -> None:
    room = Room(slow_mode=10)
    room.post(PAT)
    assert room.do(PAT, p.Ask(text="q"))


@pytest.mark.parametrize("actor", [SAM, MO], ids=["speaker", "moderator"])
def test_slow_mode_exempts_staff(actor: Actor) -> None:
    room = Room(slow_mode=10)
    room.post(actor)
    assert room.do(actor, p.Post(text="again at once"))


def test_slow_mode_off_allows_back_to_back_posts() -> None:
    room = Room(slow_mode=0)
    room.post(PAT)
    assert room.do(PAT, p.Post(text="again"))


def test_banned_user_is_refused_with_banned() -> None:
    room = Room()
    room.do(MO, p.Ban(uid=PAT.uid))
    room.refuse(PAT, p.Post(text="hi", id="b"), ErrorCode.BANNED)
    room.refuse(PAT, p.Ask(text="q"), ErrorCode.BANNED)


# --- ask --------------------------------------------------------------------------------


def test_ask_emits_an_open_q_event_with_zero_votes() -> None:
    room = Room()
    decision = room.decide(PAT, p.Ask(text="Why?"))
    (ev,) = decision.events
    assert ev == {"t": "q", "qid": "id1", "uid": PAT.uid, "name": "Pat", "text": "Why?",
                  "votes": 0, "state": "open", "ts": T0}
    assert decision.reply == {"qid": "id1"}
    assert decision.ref == "id1"


def test_a_new_question_starts_with_zero_votes_and_no_voters() -> None:
    room = Room()
    qid = room.ask(PAT)
    q = room.state.questions[qid]
    assert q.votes == 0
    assert q.voters == set()
    assert q.state == "open"
    assert q.seq == 1


def test_premoderated_participant_question_is_pending() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    assert room.state.questions[qid].state == "pending"


def test_premoderated_guest_question_is_pending() -> None:
    room = Room(premoderate=True)
    qid = room.ask(GUS)
    assert room.state.questions[qid].state == "pending"
    assert room.state.questions[qid].guest is True


@pytest.mark.parametrize("actor", [SAM, MO], ids=["speaker", "moderator"])
def test_premoderated_staff_question_is_open(actor: Actor) -> None:
    room = Room(premoderate=True)
    qid = room.ask(actor)
    assert room.state.questions[qid].state == "open"


def test_anonymous_question_keeps_the_asker_in_the_event_and_state() -> None:
    room = Room()
    ev = room.one(PAT, p.Ask(text="q", anonymous=True))
    assert ev["anonymous"] is True
    assert ev["uid"] == PAT.uid  # the log keeps the asker; views hide it
    q = room.state.questions[ev["qid"]]
    assert q.anonymous is True
    assert q.uid == PAT.uid


def test_non_anonymous_question_has_no_anonymous_key() -> None:
    assert "anonymous" not in Room().one(PAT, p.Ask(text="q"))


def test_guest_question_is_flagged_guest() -> None:
    assert Room().one(GUS, p.Ask(text="q"))["guest"] is True


def test_ask_text_limits() -> None:
    room = Room()
    room.refuse(PAT, p.Ask(text=""), ErrorCode.BAD_FRAME)
    room.refuse(PAT, p.Ask(text="x" * 2001), ErrorCode.TOO_LONG)
    assert room.do(PAT, p.Ask(text="x" * 2000))


def test_ask_when_muted_is_refused() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid, seconds=5))
    room.refuse(PAT, p.Ask(text="q"), ErrorCode.MUTED)
    room.tick(5_000)
    assert room.do(PAT, p.Ask(text="q"))


@pytest.mark.parametrize("actor", [PAT, SAM], ids=["participant", "speaker"])
def test_ask_in_closed_room_is_refused(actor: Actor) -> None:
    room = Room()
    room.state.open = False
    room.refuse(actor, p.Ask(text="q"), ErrorCode.ROOM_CLOSED)


def test_ask_in_closed_room_is_allowed_for_moderators() -> None:
    room = Room()
    room.state.open = False
    assert room.do(MO, p.Ask(text="q"))


# --- vote -------------------------------------------------------------------------------


def test_vote_emits_a_vote_event_and_counts_one() -> None:
    room = Room()
    qid = room.ask(PAT)
    decision = room.decide(PAM, p.Vote(qid=qid, up=True))
    assert decision.events == [{"t": "vote", "qid": qid, "uid": PAM.uid, "up": True,
                                "ts": T0}]
    assert decision.reply == {"votes": 1}
    fold(room.state, decision.events)
    assert room.state.questions[qid].votes == 1


def test_double_vote_emits_no_event() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(PAM, p.Vote(qid=qid))
    decision = room.nothing(PAM, p.Vote(qid=qid))
    assert decision.reply == {"votes": 1}
    assert room.state.questions[qid].votes == 1


def test_votes_from_several_users_add_up() -> None:
    room = Room()
    qid = room.ask(PAT)
    for actor in (PAT, PAM, GUS, SAM, MO):
        room.do(actor, p.Vote(qid=qid))
    assert room.state.questions[qid].votes == 5


def test_withdrawing_a_vote_emits_up_false_and_lowers_the_count() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(PAM, p.Vote(qid=qid))
    decision = room.decide(PAM, p.Vote(qid=qid, up=False))
    assert decision.events[0]["up"] is False
    assert decision.reply == {"votes": 0}
    fold(room.state, decision.events)
    assert room.state.questions[qid].votes == 0


def test_withdrawing_without_a_vote_emits_no_event() -> None:
    room = Room()
    qid = room.ask(PAT)
    assert room.nothing(PAM, p.Vote(qid=qid, up=False)).reply == {"votes": 0}


def test_vote_on_unknown_question_is_not_found() -> None:
    Room().refuse(PAT, p.Vote(qid="nope"), ErrorCode.NOT_FOUND)


def test_vote_on_deleted_question_is_not_found() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(PAT, p.Delete(qid=qid))
    room.refuse(PAM, p.Vote(qid=qid), ErrorCode.NOT_FOUND)


def test_vote_on_pending_question_is_not_found_for_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    room.refuse(PAM, p.Vote(qid=qid), ErrorCode.NOT_FOUND)
    room.refuse(PAT, p.Vote(qid=qid), ErrorCode.NOT_FOUND)  # even the asker


@pytest.mark.parametrize("actor", [SAM, MO], ids=["speaker", "moderator"])
def test_vote_on_pending_question_is_allowed_for_staff(actor: Actor) -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    room.do(actor, p.Vote(qid=qid))
    assert room.state.questions[qid].votes == 1


def test_vote_on_question_being_answered_is_allowed() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    room.do(PAM, p.Vote(qid=qid))
    assert room.state.questions[qid].votes == 1


@pytest.mark.parametrize("final", ["answered", "dismissed"])
def test_vote_on_closed_question_is_refused(final: str) -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=qid, state=final))  # type: ignore[arg-type]
    room.refuse(PAM, p.Vote(qid=qid), ErrorCode.FORBIDDEN)
    room.refuse(PAM, p.Vote(qid=qid, up=False), ErrorCode.FORBIDDEN)


def test_muted_user_may_still_vote() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(MO, p.Mute(uid=PAM.uid))
    room.do(PAM, p.Vote(qid=qid))
    assert room.state.questions[qid].votes == 1


def test_racing_duplicate_vote_events_count_once() -> None:
    room = Room()
    qid = room.ask(PAT)
    # Two processes decide the same vote against the same state; both commit.
    first = room.decide(PAM, p.Vote(qid=qid)).events
    second = room.decide(PAM, p.Vote(qid=qid)).events
    fold(room.state, first + second)
    assert room.state.questions[qid].votes == 1
    assert room.state.questions[qid].voters == {PAM.uid}


def test_racing_duplicate_withdrawals_count_once() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(PAM, p.Vote(qid=qid))
    room.do(PAT, p.Vote(qid=qid))
    first = room.decide(PAM, p.Vote(qid=qid, up=False)).events
    second = room.decide(PAM, p.Vote(qid=qid, up=False)).events
    fold(room.state, first + second)
    assert room.state.questions[qid].voters == {PAT.uid}


def test_vote_event_for_removed_question_folds_to_nothing() -> None:
    room = Room()
    qid = room.ask(PAT)
    late = room.decide(PAM, p.Vote(qid=qid)).events
    room.do(PAT, p.Delete(qid=qid))
    before = snapshot(room.state)
    fold(room.state, late)
    after = snapshot(room.state)
    assert after["seq"] == before["seq"] + 1
    assert {**after, "seq": 0} == {**before, "seq": 0}


# --- answer -------------------------------------------------------------------------------


@pytest.mark.parametrize("qid", ["nope", "id1"])
def test_answer_is_forbidden_for_participants(qid: str) -> None:
    room = Room()
    room.ask(PAT)
    room.refuse(PAT, p.Answer(qid=qid, text="I know"), ErrorCode.FORBIDDEN)


def test_answer_on_pending_question_is_refused_for_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAM)
    room.refuse(PAT, p.Answer(qid=qid, text="a"), ErrorCode.FORBIDDEN)


@pytest.mark.parametrize("actor", [SAM, MO], ids=["speaker", "moderator"])
def test_staff_answer_emits_an_answer_event(actor: Actor) -> None:
    room = Room()
    qid = room.ask(PAT)
    ev = room.one(actor, p.Answer(qid=qid, text="Because."))
    assert ev == {"t": "answer", "qid": qid, "uid": actor.uid, "name": actor.name,
                  "role": str(actor.role), "text": "Because.", "ts": T0, "seq": 2}
    assert room.state.questions[qid].answers == [ev]


def test_answer_on_unknown_question_is_not_found() -> None:
    Room().refuse(SAM, p.Answer(qid="nope", text="a"), ErrorCode.NOT_FOUND)


def test_answer_on_deleted_question_is_not_found() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(MO, p.Delete(qid=qid))
    room.refuse(SAM, p.Answer(qid=qid, text="a"), ErrorCode.NOT_FOUND)


def test_staff_may_answer_a_pending_question() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    assert room.do(SAM, p.Answer(qid=qid, text="a"))


def test_answer_text_limits() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.refuse(SAM, p.Answer(qid=qid, text=""), ErrorCode.BAD_FRAME)
    room.refuse(SAM, p.Answer(qid=qid, text="x" * 2001), ErrorCode.TOO_LONG)


# --- qstate -------------------------------------------------------------------------------


def test_approval_moves_pending_to_open() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    ev = room.one(SAM, p.SetQState(qid=qid, state="open"))
    assert ev == {"t": "qstate", "qid": qid, "state": "open", "prev": "pending", "ts": T0,
                  "by": SAM.uid, "by_name": "Sam", "seq": 2}
    assert room.state.questions[qid].state == "open"


def test_qstate_is_forbidden_for_participants() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.refuse(PAT, p.SetQState(qid=qid, state="answered"), ErrorCode.FORBIDDEN)


def test_qstate_on_unknown_question_is_not_found() -> None:
    Room().refuse(SAM, p.SetQState(qid="nope", state="open"), ErrorCode.NOT_FOUND)


def test_putting_a_question_on_stage_sets_answering() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    assert room.state.questions[qid].state == "answering"
    assert room.state.answering == qid


def test_putting_b_on_stage_moves_a_to_answered_first() -> None:
    room = Room()
    a = room.ask(PAT)
    b = room.ask(PAM)
    room.do(SAM, p.SetQState(qid=a, state="answering"))
    events = room.do(MO, p.SetQState(qid=b, state="answering"))
    assert [(e["t"], e["qid"], e["state"], e["prev"]) for e in events] == [
        ("qstate", a, "answered", "answering"),
        ("qstate", b, "answering", "open"),
    ]
    assert room.state.questions[a].state == "answered"
    assert room.state.questions[b].state == "answering"
    assert room.state.answering == b


def test_racing_answering_events_leave_one_question_on_stage() -> None:
    room = Room()
    a = room.ask(PAT)
    b = room.ask(PAM)
    # Two processes each put a different question on stage from the same state.
    ev_a = room.decide(SAM, p.SetQState(qid=a, state="answering")).events
    ev_b = room.decide(MO, p.SetQState(qid=b, state="answering")).events
    assert len(ev_a) == len(ev_b) == 1
    fold(room.state, ev_a + ev_b)
    states = {q.qid: q.state for q in room.state.questions.values()}
    assert states == {a: "answered", b: "answering"}
    assert room.state.answering == b


def test_qstate_back_to_pending_is_refused() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.refuse(SAM, p.SetQState(qid=qid, state="pending"), ErrorCode.FORBIDDEN)


def test_qstate_to_the_same_state_emits_nothing() -> None:
    room = Room(premoderate=True)
    pending = room.ask(PAT)
    room.nothing(SAM, p.SetQState(qid=pending, state="pending"))
    qid = room.ask(SAM)
    room.nothing(SAM, p.SetQState(qid=qid, state="open"))
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    room.nothing(MO, p.SetQState(qid=qid, state="answering"))


@pytest.mark.parametrize("new", ["answered", "dismissed", "open"])
def test_moving_the_question_on_stage_elsewhere_clears_answering(new: str) -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    (ev,) = room.do(SAM, p.SetQState(qid=qid, state=new))  # type: ignore[arg-type]
    assert ev["prev"] == "answering"
    assert room.state.answering is None


def test_pending_question_can_go_straight_on_stage() -> None:
    room = Room(premoderate=True)
    a = room.ask(SAM)
    b = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=a, state="answering"))
    events = room.do(SAM, p.SetQState(qid=b, state="answering"))
    assert [(e["qid"], e["state"], e["prev"]) for e in events] == [
        (a, "answered", "answering"), (b, "answering", "pending")]


# --- pin / unpin -----------------------------------------------------------------------


@pytest.mark.parametrize("actor", [SAM, MO], ids=["speaker", "moderator"])
def test_staff_pin_and_unpin(actor: Actor) -> None:
    room = Room()
    mid = room.post(PAT)
    ev = room.one(actor, p.Pin(mid=mid))
    assert ev == {"t": "pin", "mid": mid, "ts": T0, "by": actor.uid, "by_name": actor.name,
                  "seq": 2}
    assert list(room.state.pinned) == [mid]
    ev = room.one(actor, p.Unpin(mid=mid))
    assert ev["t"] == "unpin"
    assert list(room.state.pinned) == []


@pytest.mark.parametrize("req", [p.Pin(mid="id1"), p.Unpin(mid="id1")], ids=["pin", "unpin"])
def test_pin_and_unpin_are_forbidden_for_participants(req: p.Request) -> None:
    room = Room()
    room.post(PAT)
    room.refuse(PAT, req, ErrorCode.FORBIDDEN)


@pytest.mark.parametrize("cls", [p.Pin, p.Unpin])
def test_pin_and_unpin_of_unknown_post_is_not_found(cls: type[p.Pin | p.Unpin]) -> None:
    Room().refuse(SAM, cls(mid="nope"), ErrorCode.NOT_FOUND)


def test_pin_of_deleted_post_is_not_found() -> None:
    room = Room()
    mid = room.post(PAT)
    room.do(PAT, p.Delete(mid=mid))
    room.refuse(SAM, p.Pin(mid=mid), ErrorCode.NOT_FOUND)


def test_pin_twice_and_unpin_when_not_pinned_emit_nothing() -> None:
    room = Room()
    mid = room.post(PAT)
    room.nothing(SAM, p.Unpin(mid=mid))
    room.do(SAM, p.Pin(mid=mid))
    room.nothing(MO, p.Pin(mid=mid))


def test_pin_event_for_removed_post_folds_to_nothing() -> None:
    room = Room()
    mid = room.post(PAT)
    late = room.decide(SAM, p.Pin(mid=mid)).events
    room.do(PAT, p.Delete(mid=mid))
    fold(room.state, late)
    assert list(room.state.pinned) == []
    assert pinned(room.state) == []


# --- del ------------------------------------------------------------------------------------


def test_author_may_delete_own_post() -> None:
    room = Room()
    mid = room.post(PAT)
    ev = room.one(PAT, p.Delete(mid=mid))
    assert ev == {"t": "del", "mid": mid, "ts": T0, "by": PAT.uid, "by_name": "Pat",
                  "of": PAT.uid, "of_name": "Pat", "seq": 2}
    assert mid not in room.state.messages
    assert mid in room.state.deleted


def test_author_may_delete_own_question() -> None:
    room = Room()
    qid = room.ask(PAT)
    ev = room.one(PAT, p.Delete(qid=qid))
    assert ev["qid"] == qid
    assert "mid" not in ev
    assert qid not in room.state.questions
    assert qid in room.state.deleted


@pytest.mark.parametrize("actor", [PAM, SAM], ids=["participant", "speaker"])
def test_others_may_not_delete_a_post(actor: Actor) -> None:
    room = Room()
    mid = room.post(PAT)
    room.refuse(actor, p.Delete(mid=mid), ErrorCode.FORBIDDEN)


@pytest.mark.parametrize("actor", [PAM, SAM], ids=["participant", "speaker"])
def test_others_may_not_delete_a_question(actor: Actor) -> None:
    room = Room()
    qid = room.ask(PAT)
    room.refuse(actor, p.Delete(qid=qid), ErrorCode.FORBIDDEN)


def test_moderators_may_delete_anything() -> None:
    room = Room()
    mid = room.post(SAM)
    qid = room.ask(PAT)
    other = room.post(MAX)
    assert room.one(MO, p.Delete(mid=mid))["of"] == SAM.uid
    assert room.one(MO, p.Delete(qid=qid))["of"] == PAT.uid
    assert room.one(MO, p.Delete(mid=other))["of"] == MAX.uid
    assert room.state.messages == {}
    assert room.state.questions == {}


def test_delete_unknown_is_not_found() -> None:
    room = Room()
    room.refuse(MO, p.Delete(mid="nope"), ErrorCode.NOT_FOUND)
    room.refuse(MO, p.Delete(qid="nope"), ErrorCode.NOT_FOUND)


def test_delete_twice_is_not_found() -> None:
    room = Room()
    mid = room.post(PAT)
    room.do(PAT, p.Delete(mid=mid))
    room.refuse(PAT, p.Delete(mid=mid), ErrorCode.NOT_FOUND)


def test_deleting_a_pinned_post_unpins_it() -> None:
    room = Room()
    mid = room.post(PAT)
    room.do(SAM, p.Pin(mid=mid))
    room.do(MO, p.Delete(mid=mid))
    assert list(room.state.pinned) == []
    assert pinned(room.state) == []


def test_deleting_the_question_on_stage_clears_answering() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    room.do(MO, p.Delete(qid=qid))
    assert room.state.answering is None
    other = room.ask(PAM)
    (ev,) = room.do(SAM, p.SetQState(qid=other, state="answering"))  # nothing to move on
    assert ev["qid"] == other


def test_delete_with_mute_until_lifted_mutes_the_author() -> None:
    room = Room()
    mid = room.post(PAT)
    events = room.do(MO, p.Delete(mid=mid, mute=True))
    assert [e["t"] for e in events] == ["del", "mute"]
    mute = events[1]
    assert mute["uid"] == PAT.uid
    assert mute["until"] is None
    assert mute["by"] == MO.uid
    room.refuse(PAT, p.Post(text="hi"), ErrorCode.MUTED)


def test_delete_with_timed_mute_mutes_the_author_for_that_long() -> None:
    room = Room()
    qid = room.ask(PAT)
    events = room.do(MO, p.Delete(qid=qid, mute=30))
    assert events[1]["until"] == T0 + 30_000
    room.tick(29_999)
    room.refuse(PAT, p.Post(text="hi"), ErrorCode.MUTED)
    room.tick(1)
    assert room.do(PAT, p.Post(text="hi"))


def test_delete_with_mute_false_only_deletes() -> None:
    room = Room()
    mid = room.post(PAT)
    assert [e["t"] for e in room.do(MO, p.Delete(mid=mid, mute=False))] == ["del"]


def test_delete_with_mute_is_for_moderators_only() -> None:
    room = Room()
    mid = room.post(PAT)
    room.refuse(PAT, p.Delete(mid=mid, mute=60), ErrorCode.FORBIDDEN)
    qid = room.ask(SAM)
    room.refuse(SAM, p.Delete(qid=qid, mute=True), ErrorCode.FORBIDDEN)


def test_moderator_cannot_mute_self_through_delete() -> None:
    room = Room()
    mid = room.post(MO)
    room.refuse(MO, p.Delete(mid=mid, mute=True), ErrorCode.FORBIDDEN)
    assert room.do(MO, p.Delete(mid=mid))  # deleting without the mute still works
    assert not room.state.is_muted(MO.uid, room.now)


def test_delete_of_pending_question_is_marked_pending() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    ev = room.one(MO, p.Delete(qid=qid))
    assert ev["pending"] is True


def test_participant_may_withdraw_own_pending_question() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(PAT, p.Delete(qid=qid))
    assert ev["qid"] == qid and ev["pending"] is True
    assert qid not in room.state.questions
    # ...but someone else's pending question stays unknown to a participant.
    other = room.ask(PAM)
    room.refuse(PAT, p.Delete(qid=other), ErrorCode.NOT_FOUND)


# --- mute, unmute, ban, unban, settings ------------------------------------------------------


MODERATOR_ONLY = [
    p.Mute(uid="u-x"), p.Unmute(uid="u-x"), p.Ban(uid="u-x"), p.Unban(uid="u-x"),
    p.Settings(slow_mode=5),
]


@pytest.mark.parametrize("req", MODERATOR_ONLY, ids=lambda r: r.t)
@pytest.mark.parametrize("actor", [PAT, SAM, GUS], ids=["participant", "speaker", "guest"])
def test_moderation_is_forbidden_for_non_moderators(actor: Actor, req: p.Request) -> None:
    Room().refuse(actor, req, ErrorCode.FORBIDDEN)


def test_mute_emits_mute_event_until_lifted() -> None:
    room = Room()
    room.post(PAT)
    ev = room.one(MO, p.Mute(uid=PAT.uid))
    assert ev == {"t": "mute", "uid": PAT.uid, "until": None, "name": "Pat", "ts": T0,
                  "by": MO.uid, "by_name": "Mo", "seq": 2}
    assert room.state.mutes == {PAT.uid: None}


def test_mute_with_seconds_sets_until() -> None:
    room = Room()
    ev = room.one(MO, p.Mute(uid="u-stranger", seconds=90))
    assert ev["until"] == T0 + 90_000
    assert "name" not in ev  # never seen here: no name known
    assert room.state.is_muted("u-stranger", T0 + 89_999)
    assert not room.state.is_muted("u-stranger", T0 + 90_000)


def test_cannot_mute_self() -> None:
    Room().refuse(MO, p.Mute(uid=MO.uid), ErrorCode.FORBIDDEN)


def test_moderator_may_mute_another_moderator() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=MAX.uid))
    room.refuse(MAX, p.Post(text="hi"), ErrorCode.MUTED)


def test_unmute_emits_unmute_event() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid, seconds=60))
    ev = room.one(MO, p.Unmute(uid=PAT.uid))
    assert ev["t"] == "unmute"
    assert ev["uid"] == PAT.uid
    assert ev["until"] is None
    assert PAT.uid not in room.state.mutes


def test_unmute_when_not_muted_emits_nothing() -> None:
    room = Room()
    room.nothing(MO, p.Unmute(uid=PAT.uid))


def test_unmute_after_a_timed_mute_ended_emits_nothing() -> None:
    room = Room()
    room.do(MO, p.Mute(uid=PAT.uid, seconds=1))
    room.tick(1_000)
    room.nothing(MO, p.Unmute(uid=PAT.uid))


def test_ban_emits_ban_event_and_refuses_the_user_everything() -> None:
    room = Room()
    qid = room.ask(PAM)
    room.post(PAT)
    ev = room.one(MO, p.Ban(uid=PAT.uid))
    assert ev == {"t": "ban", "uid": PAT.uid, "name": "Pat", "ts": T0, "by": MO.uid,
                  "by_name": "Mo", "seq": 3}
    assert room.state.bans == {PAT.uid}
    room.refuse(PAT, p.Vote(qid=qid), ErrorCode.BANNED)
    room.refuse(PAT, p.Ping(), ErrorCode.BANNED)


def test_banned_moderator_is_refused() -> None:
    room = Room()
    room.do(MO, p.Ban(uid=MAX.uid))
    room.refuse(MAX, p.Unban(uid=MAX.uid), ErrorCode.BANNED)
    room.refuse(MAX, p.Post(text="hi"), ErrorCode.BANNED)


def test_ban_twice_emits_nothing_and_unban_lifts() -> None:
    room = Room()
    room.do(MO, p.Ban(uid=PAT.uid))
    room.nothing(MAX, p.Ban(uid=PAT.uid))
    ev = room.one(MAX, p.Unban(uid=PAT.uid))
    assert ev["t"] == "unban"
    assert room.state.bans == set()
    assert room.do(PAT, p.Post(text="back"))


def test_unban_when_not_banned_emits_nothing() -> None:
    Room().nothing(MO, p.Unban(uid=PAT.uid))


@pytest.mark.parametrize("cls", [p.Ban, p.Unban])
def test_cannot_ban_or_unban_self(cls: type[p.Ban | p.Unban]) -> None:
    Room().refuse(MO, cls(uid=MO.uid), ErrorCode.FORBIDDEN)


def test_settings_emits_room_event_with_full_settings() -> None:
    room = Room(slow_mode=3, guests=False, premoderate=True)
    ev = room.one(MO, p.Settings(slow_mode=30))
    assert ev == {"t": "room", "state": "open",
                  "settings": {"slow_mode": 30, "guests": False, "premoderate": True},
                  "ts": T0, "by": MO.uid, "by_name": "Mo", "seq": 1}
    assert room.state.settings == RoomSettings(slow_mode=30, guests=False, premoderate=True)


def test_settings_each_field() -> None:
    room = Room()
    room.do(MO, p.Settings(guests=False))
    room.do(MO, p.Settings(premoderate=True))
    room.do(MO, p.Settings(slow_mode=0))  # unchanged: nothing
    assert room.state.seq == 2
    assert room.state.settings.to_wire() == {"slow_mode": 0, "guests": False,
                                             "premoderate": True}


def test_settings_without_change_emits_nothing() -> None:
    room = Room(slow_mode=5)
    room.nothing(MO, p.Settings())
    room.nothing(MO, p.Settings(slow_mode=5, guests=True, premoderate=False, state="open"))


def test_settings_closes_and_reopens_the_room() -> None:
    room = Room()
    ev = room.one(MO, p.Settings(state="closed"))
    assert ev["state"] == "closed"
    assert ev["settings"] == RoomSettings().to_wire()
    assert room.state.open is False
    assert room.state.state_name == "closed"
    assert room.state.room_wire()["state"] == "closed"
    room.refuse(PAT, p.Post(text="hi"), ErrorCode.ROOM_CLOSED)
    room.nothing(MO, p.Settings(state="closed"))
    room.do(MO, p.Settings(state="open"))
    assert room.state.open is True
    assert room.do(PAT, p.Post(text="hi"))


def test_room_wire() -> None:
    room = Room(slow_mode=10)
    assert room.state.room_wire() == {
        "id": "r1", "title": "Room one", "state": "open",
        "settings": {"slow_mode": 10, "guests": True, "premoderate": False}}


def test_ping_emits_nothing_for_everyone() -> None:
    room = Room()
    for actor in (PAT, GUS, SAM, MO):
        assert room.decide(actor, p.Ping()) == Decision([])


def test_hello_is_not_a_room_request() -> None:
    with pytest.raises(ProtocolError):
        Room().decide(PAT, p.Hello())


# --- apply ----------------------------------------------------------------------------------


def test_apply_advances_seq_for_unknown_event_types() -> None:
    state = RoomState("r")
    fold(state, [{"t": "presence-ish", "ts": 1}])
    assert state.seq == 1


def test_apply_is_total_on_events_about_missing_things() -> None:
    state = RoomState("r")
    fold(state, [
        {"t": "pin", "mid": "gone", "ts": 1},
        {"t": "unpin", "mid": "gone", "ts": 1},
        {"t": "vote", "qid": "gone", "uid": "u", "up": True, "ts": 1},
        {"t": "answer", "qid": "gone", "uid": "u", "name": "n", "role": "speaker",
         "text": "a", "ts": 1},
        {"t": "qstate", "qid": "gone", "state": "answering", "ts": 1},
        {"t": "del", "mid": "gone", "ts": 1},
        {"t": "del", "qid": "gone", "ts": 1},
        {"t": "unmute", "uid": "u", "until": None, "ts": 1},
        {"t": "unban", "uid": "u", "ts": 1},
    ])
    assert state.seq == 9
    assert state.pinned == {}
    assert state.questions == {}
    assert state.answering is None


def test_oldest_posts_leave_memory_beyond_max_messages() -> None:
    room = Room()
    room.state.max_messages = 3
    mids = [room.post(MO, f"m{i}") for i in range(3)]
    room.do(SAM, p.Pin(mid=mids[0]))
    room.post(MO, "m3")
    assert [m["text"] for m in room.state.messages.values()] == ["m1", "m2", "m3"]
    assert list(room.state.pinned) == []


def test_folding_the_log_again_rebuilds_the_state() -> None:
    room = Room(premoderate=True)
    mid = room.post(PAT)
    qid = room.ask(PAM, anonymous=True)
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    room.do(PAT, p.Vote(qid=qid))
    room.do(SAM, p.Pin(mid=mid))
    room.do(MO, p.Mute(uid=GUS.uid, seconds=10))
    room.do(MO, p.Settings(slow_mode=4))
    again = RoomState("r1", title="Room one", settings=RoomSettings(premoderate=True))
    for ev in room.log:
        apply(again, ev)
    assert snapshot(again) == snapshot(room.state)


# --- views -----------------------------------------------------------------------------------


def anonymous_room() -> tuple[Room, str, Event]:
    room = Room()
    (ev,) = room.do(GUS, p.Ask(text="Is it safe?", anonymous=True))
    return room, str(ev["qid"]), ev


@pytest.mark.parametrize("role", [Role.PARTICIPANT, Role.SPEAKER])
def test_anonymous_q_event_hides_the_asker_from_non_moderators(role: Role) -> None:
    room, _, ev = anonymous_room()
    v = view(room.state, ev, role)
    assert v is not None
    assert v["uid"] is None
    assert v["name"] == ANONYMOUS_NAME
    assert v["anonymous"] is True
    assert "guest" not in v
    assert v["text"] == "Is it safe?"
    assert ev["uid"] == GUS.uid  # the committed event itself is untouched


def test_anonymous_q_event_keeps_the_asker_for_moderators() -> None:
    room, _, ev = anonymous_room()
    v = view(room.state, ev, Role.MODERATOR)
    assert v is not None
    assert v["uid"] == GUS.uid
    assert v["name"] == "Gus"
    assert v["guest"] is True


@pytest.mark.parametrize("role", [Role.PARTICIPANT, Role.SPEAKER])
def test_anonymous_question_in_welcome_hides_the_asker(role: Role) -> None:
    room, _, _ = anonymous_room()
    (q,) = questions_view(room.state, role)
    assert q["uid"] is None
    assert q["name"] == ANONYMOUS_NAME
    assert "guest" not in q


def test_anonymous_question_in_welcome_keeps_the_asker_for_moderators() -> None:
    room, _, _ = anonymous_room()
    (q,) = questions_view(room.state, Role.MODERATOR)
    assert q["uid"] == GUS.uid
    assert q["name"] == "Gus"


def test_anonymous_question_approval_hides_the_asker_from_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT, anonymous=True)
    (ev,) = room.do(MO, p.SetQState(qid=qid, state="open"))
    v = view(room.state, ev, Role.PARTICIPANT)
    assert v is not None
    assert v["t"] == "q"
    assert v["uid"] is None
    assert v["name"] == ANONYMOUS_NAME


@pytest.mark.parametrize("role", ROLES)
def test_non_anonymous_q_event_is_shown_as_is(role: Role) -> None:
    room = Room()
    (ev,) = room.do(GUS, p.Ask(text="q"))
    assert view(room.state, ev, role) == ev


def test_pending_q_event_reaches_only_staff() -> None:
    room = Room(premoderate=True)
    (ev,) = room.do(PAT, p.Ask(text="q"))
    assert view(room.state, ev, Role.PARTICIPANT) is None
    assert view(room.state, ev, Role.SPEAKER) == ev
    assert view(room.state, ev, Role.MODERATOR) == ev


def test_approval_becomes_a_full_q_event_for_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT, "Pending one")
    room.do(SAM, p.Vote(qid=qid))
    room.tick(5)
    (ev,) = room.do(MO, p.SetQState(qid=qid, state="open"))
    assert view(room.state, ev, Role.PARTICIPANT) == {
        "t": "q", "qid": qid, "uid": PAT.uid, "name": "Pat", "text": "Pending one",
        "votes": 1, "state": "open", "seq": ev["seq"], "ts": T0 + 5}


def test_approval_stays_a_qstate_for_staff() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(MO, p.SetQState(qid=qid, state="open"))
    assert view(room.state, ev, Role.SPEAKER) == {"t": "qstate", "qid": qid, "state": "open",
                                                  "ts": T0, "seq": ev["seq"]}
    assert view(room.state, ev, Role.MODERATOR) == ev


def test_approval_straight_to_stage_is_a_q_event_in_answering_for_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(SAM, p.SetQState(qid=qid, state="answering"))
    v = view(room.state, ev, Role.PARTICIPANT)
    assert v is not None
    assert (v["t"], v["state"]) == ("q", "answering")


def test_dismissing_a_pending_question_is_not_shown_to_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(SAM, p.SetQState(qid=qid, state="dismissed"))
    assert view(room.state, ev, Role.PARTICIPANT) is None
    assert view(room.state, ev, Role.SPEAKER) is not None


def test_answer_on_pending_question_is_not_shown_to_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(SAM, p.Answer(qid=qid, text="a"))
    assert view(room.state, ev, Role.PARTICIPANT) is None
    assert view(room.state, ev, Role.SPEAKER) == ev


@pytest.mark.parametrize("role", ROLES)
def test_answer_on_open_question_is_shown_to_all(role: Role) -> None:
    room = Room()
    qid = room.ask(PAT)
    (ev,) = room.do(SAM, p.Answer(qid=qid, text="a"))
    assert view(room.state, ev, role) == ev


def test_delete_of_pending_question_is_hidden_from_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (ev,) = room.do(MO, p.Delete(qid=qid))
    assert view(room.state, ev, Role.PARTICIPANT) is None
    assert view(room.state, ev, Role.SPEAKER) == {"t": "del", "qid": qid, "ts": T0,
                                                  "seq": ev["seq"]}
    assert view(room.state, ev, Role.MODERATOR) == ev


def test_delete_of_open_question_is_shown_to_participants_without_internal_keys() -> None:
    room = Room()
    qid = room.ask(PAT)
    (ev,) = room.do(MO, p.Delete(qid=qid))
    assert view(room.state, ev, Role.PARTICIPANT) == {"t": "del", "qid": qid, "ts": T0,
                                                      "seq": ev["seq"]}


def internal_key_events() -> tuple[Room, list[Event]]:
    """One committed event of each type that carries internal keys."""
    room = Room()
    mid = room.post(PAT)
    qid = room.ask(PAT)
    room.do(SAM, p.Pin(mid=mid))
    room.do(SAM, p.Unpin(mid=mid))
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    room.do(MO, p.Mute(uid=PAM.uid))
    room.do(MO, p.Unmute(uid=PAM.uid))
    room.do(MO, p.Settings(slow_mode=5))
    room.do(MO, p.Delete(mid=mid, mute=10))
    return room, [ev for ev in room.log if any(k in ev for k in INTERNAL)]


def test_every_kind_of_internal_key_is_covered() -> None:
    _, events = internal_key_events()
    assert {k for ev in events for k in ev if k in INTERNAL} == set(INTERNAL) - {"pending"}
    assert {ev["t"] for ev in events} == {"pin", "unpin", "qstate", "mute", "unmute", "room",
                                          "del"}


@pytest.mark.parametrize("role", [Role.PARTICIPANT, Role.SPEAKER])
def test_internal_keys_are_stripped_for_non_moderators(role: Role) -> None:
    room, events = internal_key_events()
    for ev in events:
        v = view(room.state, ev, role)
        assert v is not None
        assert not any(k in v for k in INTERNAL), v
        # ...and a moderation act never names the person it was about
        assert v == {k: val for k, val in ev.items() if k not in INTERNAL and k != "name"}


def test_internal_keys_are_kept_for_moderators() -> None:
    room, events = internal_key_events()
    for ev in events:
        assert view(room.state, ev, Role.MODERATOR) == ev


@pytest.mark.parametrize("role", ROLES)
def test_ban_and_unban_reach_only_moderators(role: Role) -> None:
    room = Room()
    (ban,) = room.do(MO, p.Ban(uid=PAT.uid))
    (unban,) = room.do(MO, p.Unban(uid=PAT.uid))
    for ev in (ban, unban):
        assert view(room.state, ev, role) == (ev if role is Role.MODERATOR else None)


@pytest.mark.parametrize("role", ROLES)
def test_vote_events_are_never_sent_as_such(role: Role) -> None:
    room = Room()
    qid = room.ask(PAT)
    (ev,) = room.do(PAM, p.Vote(qid=qid))
    assert view(room.state, ev, role) is None


@pytest.mark.parametrize("role", ROLES)
def test_msg_events_are_shown_to_all_as_is(role: Role) -> None:
    room = Room()
    (ev,) = room.do(GUS, p.Post(text="hi"))
    assert view(room.state, ev, role) == ev


def test_votes_event() -> None:
    room = Room()
    qid = room.ask(PAT)
    room.do(PAM, p.Vote(qid=qid))
    assert votes_event(room.state.questions[qid], 7, 99) == {
        "t": "votes", "qid": qid, "votes": 1, "seq": 7, "ts": 99}


def test_questions_record_when_participants_first_saw_them() -> None:
    room = Room(premoderate=True)
    open_q = room.ask(SAM)
    pending = room.ask(PAT)
    assert room.state.questions[open_q].shown == 1
    assert room.state.questions[pending].shown is None
    room.do(MO, p.SetQState(qid=pending, state="answering"))
    room.do(MO, p.SetQState(qid=pending, state="open"))
    assert room.state.questions[pending].shown == 3


def test_declined_question_stays_unknown_to_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    events = [*room.do(SAM, p.Vote(qid=qid)),
              *room.do(SAM, p.SetQState(qid=qid, state="dismissed")),
              *room.do(SAM, p.Answer(qid=qid, text="no")),
              *room.do(SAM, p.SetQState(qid=qid, state="answered"))]
    assert room.state.questions[qid].shown is None
    for ev in events:
        assert view(room.state, ev, Role.PARTICIPANT) is None, ev
        assert view(room.state, ev, Role.SPEAKER) is not None or ev["t"] == "vote"
    assert replay(room.state, room.log, Role.PARTICIPANT) == []
    assert questions_view(room.state, Role.PARTICIPANT) == []


def test_reinstating_a_declined_question_introduces_it_to_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT, "declined, then reinstated")
    room.do(SAM, p.SetQState(qid=qid, state="dismissed"))
    (ev,) = room.do(MO, p.SetQState(qid=qid, state="open"))
    v = view(room.state, ev, Role.PARTICIPANT)
    assert v is not None
    assert (v["t"], v["qid"], v["state"], v["text"]) == ("q", qid, "open",
                                                         "declined, then reinstated")
    assert view(room.state, ev, Role.SPEAKER) == {k: x for k, x in ev.items()
                                                  if k not in INTERNAL}
    assert [e["t"] for e in replay(room.state, room.log, Role.PARTICIPANT)] == ["q"]


def test_racing_approvals_introduce_the_question_once() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    first = room.decide(SAM, p.SetQState(qid=qid, state="open")).events
    second = room.decide(MO, p.SetQState(qid=qid, state="answering")).events
    a, b = fold(room.state, first + second)
    va, vb = (view(room.state, ev, Role.PARTICIPANT) for ev in (a, b))
    assert va is not None and va["t"] == "q"
    assert vb == {"t": "qstate", "qid": qid, "state": "answering", "ts": T0, "seq": b["seq"]}


def test_qstate_folded_after_the_question_was_removed_reaches_only_staff() -> None:
    room = Room()
    qid = room.ask(PAT)
    late = room.decide(SAM, p.SetQState(qid=qid, state="answering")).events
    room.do(MO, p.Delete(qid=qid))
    (ev,) = fold(room.state, late)
    assert room.state.answering is None
    assert view(room.state, ev, Role.PARTICIPANT) is None
    assert view(room.state, ev, Role.MODERATOR) == ev


def test_answers_given_before_approval_are_not_sent_to_participants() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    (early,) = room.do(SAM, p.Answer(qid=qid, text="early"))
    room.do(SAM, p.SetQState(qid=qid, state="open"))
    (late,) = room.do(SAM, p.Answer(qid=qid, text="late"))
    assert view(room.state, early, Role.PARTICIPANT) is None
    assert view(room.state, late, Role.PARTICIPANT) == late
    assert view(room.state, early, Role.SPEAKER) == early
    out = replay(room.state, room.log, Role.PARTICIPANT)
    assert [(e["t"], e.get("text")) for e in out] == [("q", "why?"), ("answer", "late")]
    (q,) = questions_view(room.state, Role.PARTICIPANT)  # the welcome has them all
    assert [a["text"] for a in q["answers"]] == ["early", "late"]


def test_deleting_an_anonymous_question_with_mute_keeps_the_asker_hidden() -> None:
    room = Room()
    room.post(PAM)
    qid = room.ask(PAT, "embarrassing", anonymous=True)
    events = room.do(MO, p.Delete(qid=qid, mute=True))
    for ev in events:
        v = view(room.state, ev, Role.PARTICIPANT)
        if v is not None:
            assert PAT.uid not in v.values()
            assert "Pat" not in v.values()


# --- welcome helpers: history, pinned, ranked questions ----------------------------------------


def test_history_is_the_latest_window_oldest_first() -> None:
    room = Room()
    for i in range(HISTORY_WINDOW + 50):
        room.post(MO, f"m{i}")
    h = history(room.state)
    assert len(h) == HISTORY_WINDOW == 100
    assert [ev["text"] for ev in h] == [f"m{i}" for i in range(50, 150)]
    assert all(ev["t"] == "msg" for ev in h)


def test_history_with_fewer_posts_is_all_of_them() -> None:
    room = Room()
    for i in range(3):
        room.post(MO, f"m{i}")
    assert [ev["text"] for ev in history(room.state)] == ["m0", "m1", "m2"]
    assert history(RoomState("empty")) == []


def test_history_limit() -> None:
    room = Room()
    for i in range(5):
        room.post(MO, f"m{i}")
    assert [ev["text"] for ev in history(room.state, 2)] == ["m3", "m4"]
    assert history(room.state, 0) == []


def test_history_leaves_out_deleted_posts() -> None:
    room = Room()
    mids = [room.post(MO, f"m{i}") for i in range(HISTORY_WINDOW + 1)]
    room.do(MO, p.Delete(mid=mids[-1]))
    room.do(MO, p.Delete(mid=mids[50]))
    h = history(room.state)
    assert len(h) == 99
    assert mids[50] not in [ev["mid"] for ev in h]
    assert h[0]["mid"] == mids[0]


def test_pinned_lists_pinned_posts_in_pin_order() -> None:
    room = Room()
    a, b, c = (room.post(MO, t) for t in "abc")
    room.do(SAM, p.Pin(mid=c))
    room.do(SAM, p.Pin(mid=a))
    room.do(SAM, p.Pin(mid=b))
    room.do(MO, p.Delete(mid=b))
    assert [ev["text"] for ev in pinned(room.state)] == ["c", "a"]
    assert all(ev["t"] == "msg" for ev in pinned(room.state))


def ranked_room() -> tuple[Room, dict[str, str]]:
    room = Room(premoderate=True)
    q: dict[str, str] = {}
    q["old1"] = room.ask(SAM, "old, one vote")
    q["new2"] = room.ask(SAM, "new, two votes")
    q["zero"] = room.ask(SAM, "no votes")
    q["new1"] = room.ask(SAM, "newer, one vote")
    q["pend"] = room.ask(PAT, "pending, three votes")
    q["done"] = room.ask(SAM, "answered")
    q["gone"] = room.ask(SAM, "dismissed")
    room.do(PAT, p.Vote(qid=q["old1"]))
    room.do(PAT, p.Vote(qid=q["new2"]))
    room.do(PAM, p.Vote(qid=q["new2"]))
    room.do(PAM, p.Vote(qid=q["new1"]))
    for actor in (SAM, MO, MAX):
        room.do(actor, p.Vote(qid=q["pend"]))
        room.do(actor, p.Vote(qid=q["done"]))
    room.do(SAM, p.SetQState(qid=q["done"], state="answered"))
    room.do(SAM, p.SetQState(qid=q["gone"], state="dismissed"))
    room.do(SAM, p.SetQState(qid=q["zero"], state="answering"))
    return room, q


def test_ranked_questions_for_participants() -> None:
    room, q = ranked_room()
    got = [x.qid for x in ranked_questions(room.state, Role.PARTICIPANT)]
    assert got == [q["new2"], q["old1"], q["new1"], q["zero"]]


@pytest.mark.parametrize("role", [Role.SPEAKER, Role.MODERATOR])
def test_ranked_questions_for_staff_include_pending(role: Role) -> None:
    room, q = ranked_room()
    got = [x.qid for x in ranked_questions(room.state, role)]
    assert got == [q["pend"], q["new2"], q["old1"], q["new1"], q["zero"]]


def test_questions_view_has_current_votes_state_and_public_answers() -> None:
    room = Room()
    qid = room.ask(PAT, "q")
    room.do(PAM, p.Vote(qid=qid))
    room.do(SAM, p.SetQState(qid=qid, state="answering"))
    (answer,) = room.do(SAM, p.Answer(qid=qid, text="a"))
    for role in ROLES:
        (v,) = questions_view(room.state, role)
        assert v == {"t": "q", "qid": qid, "uid": PAT.uid, "name": "Pat", "text": "q",
                     "votes": 1, "state": "answering", "seq": 1, "ts": T0,
                     "answers": [answer]}


def test_question_view_overrides_seq_and_ts() -> None:
    room = Room()
    qid = room.ask(PAT)
    v = question_view(room.state.questions[qid], Role.PARTICIPANT, seq=42, ts=7)
    assert (v["seq"], v["ts"]) == (42, 7)
    assert "answers" not in v


# --- replay -----------------------------------------------------------------------------------


def test_replay_collapses_votes_to_one_event_per_question_at_the_last_change() -> None:
    room = Room()
    a = room.ask(PAT)
    b = room.ask(PAT)
    since = room.state.seq
    room.do(PAT, p.Vote(qid=a))          # 3
    room.do(PAM, p.Vote(qid=a))          # 4
    room.do(PAM, p.Vote(qid=b))          # 5
    room.post(PAT, "between")            # 6
    room.do(SAM, p.Vote(qid=a))          # 7
    room.do(PAT, p.Vote(qid=a, up=False))  # 8
    room.post(PAT, "after")              # 9
    out = replay(room.state, room.log[since:], Role.PARTICIPANT)
    assert [(ev["t"], ev.get("qid"), ev.get("votes"), ev["seq"]) for ev in out] == [
        ("votes", b, 1, 5),
        ("msg", None, None, 6),
        ("votes", a, 2, 8),
        ("msg", None, None, 9),
    ]
    assert out[2]["ts"] == room.log[7]["ts"]


def test_replay_leaves_out_deleted_posts_and_their_pins() -> None:
    room = Room()
    kept = room.post(PAT, "kept")
    gone = room.post(PAT, "gone")
    room.do(SAM, p.Pin(mid=gone))
    room.do(SAM, p.Unpin(mid=gone))
    room.do(SAM, p.Pin(mid=gone))
    room.do(SAM, p.Pin(mid=kept))
    room.do(PAT, p.Delete(mid=gone))
    out = replay(room.state, room.log, Role.PARTICIPANT)
    assert [(ev["t"], ev.get("mid")) for ev in out] == [
        ("msg", kept), ("pin", kept), ("del", gone)]


def test_replay_leaves_out_deleted_questions_and_their_answers_states_and_votes() -> None:
    room = Room()
    kept = room.ask(PAT, "kept")
    gone = room.ask(PAT, "gone")
    room.do(PAM, p.Vote(qid=gone))
    room.do(SAM, p.Answer(qid=gone, text="a"))
    room.do(SAM, p.SetQState(qid=gone, state="answering"))
    room.do(SAM, p.Answer(qid=kept, text="b"))
    room.do(MO, p.Delete(qid=gone))
    for role in ROLES:
        out = replay(room.state, room.log, role)
        assert [(ev["t"], ev.get("qid")) for ev in out] == [
            ("q", kept), ("answer", kept), ("del", gone)]


def test_replay_hides_pending_and_converts_approvals_for_participants() -> None:
    room = Room(premoderate=True)
    hidden = room.ask(PAT, "never approved")
    approved = room.ask(PAM, "approved", anonymous=True)
    room.do(SAM, p.Vote(qid=hidden))
    room.do(SAM, p.Answer(qid=hidden, text="psst"))
    room.do(MO, p.SetQState(qid=approved, state="open"))
    room.do(MO, p.Ban(uid=GUS.uid))
    room.do(MO, p.Mute(uid=GUS.uid))
    out = replay(room.state, room.log, Role.PARTICIPANT)
    assert [ev["t"] for ev in out] == ["q", "mute"]
    q, mute = out
    assert (q["qid"], q["state"], q["uid"], q["name"]) == (approved, "open", None,
                                                           ANONYMOUS_NAME)
    assert not any(k in mute for k in INTERNAL)


def test_replay_sends_participants_no_votes_from_before_approval() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    room.do(SAM, p.Vote(qid=qid))
    room.do(MO, p.SetQState(qid=qid, state="open"))
    out = replay(room.state, room.log, Role.PARTICIPANT)
    assert [(e["t"], e["votes"], e["seq"]) for e in out] == [("q", 1, 3)]
    staff = replay(room.state, room.log, Role.SPEAKER)
    assert [(e["t"], e["seq"]) for e in staff] == [("q", 1), ("votes", 2), ("qstate", 3)]


def test_replay_sends_participants_votes_from_after_approval() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT)
    room.do(SAM, p.Vote(qid=qid))
    room.do(MO, p.SetQState(qid=qid, state="open"))
    room.do(PAM, p.Vote(qid=qid))
    out = replay(room.state, room.log, Role.PARTICIPANT)
    assert [(e["t"], e["votes"], e["seq"]) for e in out] == [("q", 2, 3), ("votes", 2, 4)]


def test_replay_for_moderators_keeps_pending_bans_and_internal_keys() -> None:
    room = Room(premoderate=True)
    qid = room.ask(PAT, "pending", anonymous=True)
    room.do(SAM, p.Vote(qid=qid))
    room.do(MO, p.Ban(uid=GUS.uid))
    out = replay(room.state, room.log, Role.MODERATOR)
    assert [ev["t"] for ev in out] == ["q", "votes", "ban"]
    assert out[0]["uid"] == PAT.uid
    assert out[1]["votes"] == 1
    assert out[2]["by"] == MO.uid


def test_replay_of_nothing_is_nothing() -> None:
    assert replay(Room().state, [], Role.PARTICIPANT) == []
