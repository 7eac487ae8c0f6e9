"""Anonymity as a property (issue 13): whatever happens in a room, no frame that a
participant or speaker can be sent connects an anonymous asker with their question.

Random sequences of requests (anonymous and named questions, every moderation act,
votes, answers, approvals) go through decide and apply, and every live view, every
replay from every position and every welcome part is checked, as is the Markdown
transcript. The asker never posts in chat, so their name must appear nowhere at all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livehub import export
from livehub import protocol as p
from livehub.export import RoomLog
from livehub.protocol import ProtocolError
from livehub.roles import Role
from livehub.room import (
    Actor,
    Context,
    Event,
    RoomSettings,
    RoomState,
    apply,
    decide,
    history,
    pinned,
    questions_view,
    replay,
    view,
)

ASKER = Actor("asker-uid", "Secret Asker", Role.PARTICIPANT)
GUEST_ASKER = Actor("g-asker", "Guest Asker", Role.PARTICIPANT, guest=True, addr="a1b2")
PAT = Actor("pat-uid", "Pat", Role.PARTICIPANT)
SAM = Actor("sam-uid", "Sam", Role.SPEAKER)
MO = Actor("mo-uid", "Mo", Role.MODERATOR)
SECRETS = {ASKER.uid, ASKER.name, GUEST_ASKER.uid, GUEST_ASKER.name, "a1b2"}
ONLOOKERS = (Role.PARTICIPANT, Role.SPEAKER)
T0 = 1_700_000_000_000


def leaks(frame: Any, secrets: set[str] = SECRETS) -> bool:
    """Whether any string anywhere in ``frame`` is one of ``secrets``."""
    if isinstance(frame, str):
        return frame in secrets
    if isinstance(frame, dict):
        return any(leaks(k, secrets) or leaks(v, secrets) for k, v in frame.items())
    if isinstance(frame, list | tuple):
        return any(leaks(v, secrets) for v in frame)
    return False


def mute_by_uid(frame: Event) -> bool:
    """A `mute`/`unmute` by uid may carry the uid (the contract allows it), never a name."""
    return frame.get("t") in ("mute", "unmute") and set(frame) <= {
        "t", "seq", "ts", "uid", "until"}


QIDS = st.sampled_from(["id1", "id2", "id3", "id4", "id5", "id6"])
ASKERS = st.sampled_from([ASKER, GUEST_ASKER])
STAFF = st.sampled_from([SAM, MO])

steps = st.one_of(
    st.tuples(ASKERS, st.builds(p.Ask, text=st.just("?"), anonymous=st.just(True))),
    st.tuples(st.sampled_from([PAT, SAM]), st.builds(p.Ask, text=st.just("named?"))),
    st.tuples(st.sampled_from([PAT, SAM, MO, ASKER, GUEST_ASKER]),
              st.builds(p.Vote, qid=QIDS, up=st.booleans())),
    st.tuples(STAFF, st.builds(p.Answer, qid=QIDS, text=st.just("answer"))),
    st.tuples(STAFF, st.builds(p.SetQState, qid=QIDS, state=st.sampled_from(
        ["open", "answering", "answered", "dismissed"]))),
    st.tuples(st.just(MO), st.builds(p.Mute, qid=QIDS, seconds=st.none() | st.just(60))),
    st.tuples(st.just(MO), st.builds(p.Mute, uid=st.sampled_from([ASKER.uid, GUEST_ASKER.uid]),
                                     seconds=st.none() | st.just(60))),
    st.tuples(st.just(MO), st.builds(p.Unmute, uid=st.sampled_from([ASKER.uid,
                                                                   GUEST_ASKER.uid]))),
    st.tuples(st.just(MO), st.builds(p.Ban, qid=QIDS)),
    st.tuples(st.just(MO), st.builds(p.Unban, uid=st.sampled_from([ASKER.uid,
                                                                  GUEST_ASKER.uid]))),
    st.tuples(st.sampled_from([MO, ASKER, GUEST_ASKER]),
              st.builds(p.Delete, qid=QIDS, mute=st.none() | st.just(True))),
    st.tuples(st.just(MO), st.builds(p.Settings, premoderate=st.booleans())),
    st.tuples(st.just(PAT), st.builds(p.Post, text=st.just("chat"))),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(premoderate=st.booleans(), script=st.lists(steps, max_size=40))
def test_no_frame_to_a_non_moderator_names_an_anonymous_asker(
        premoderate: bool, script: list[tuple[Actor, p.Request]]) -> None:
    state = RoomState("r1", settings=RoomSettings(premoderate=premoderate))
    log: list[Event] = []
    now = T0
    for i, (actor, req) in enumerate(script):
        now += 1000
        try:
            decision = decide(state, actor, req, Context(now=now, new_id=f"id{len(log) + 1}"))
        except ProtocolError:
            continue
        for ev in decision.events:
            ev = dict(ev, seq=state.seq + 1)
            apply(state, ev)
            log.append(ev)
            for role in ONLOOKERS:
                v = view(state, ev, role)
                if v is not None and not mute_by_uid(v):
                    assert not leaks(v), (i, role, v)
                assert v is None or "addr" not in v
            assert "addr" not in (view(state, ev, Role.MODERATOR) or {})
    for role in ONLOOKERS:
        for since in range(0, len(log) + 1, 3):
            for frame in replay(state, log[since:], role):
                assert mute_by_uid(frame) or not leaks(frame), (role, since, frame)
        welcome = {"history": history(state), "pinned": pinned(state),
                   "questions": questions_view(state, role)}
        assert not leaks(welcome), welcome
    # The Markdown never names anyone who asked anonymously (others it may name when a
    # moderator acted on them).
    md = export.to_markdown(RoomLog(room="r1", events=log))
    anonymous = {ev["uid"] for ev in log if ev["t"] == "q" and ev.get("anonymous")}
    for actor in (ASKER, GUEST_ASKER):
        if actor.uid in anonymous:
            assert actor.uid not in md and actor.name not in md, md
