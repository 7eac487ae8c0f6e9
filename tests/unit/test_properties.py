"""Properties of the protocol and the room core, checked with Hypothesis.

1. Nothing a client can send makes ``parse_request`` raise anything but
   ``ProtocolError``, and both codecs agree on what a map means.
2. Any sequence of requests from a few actors of mixed roles, some decided
   against the same state as if two processes raced, goes through ``decide``
   and ``apply`` without surprises: ``decide`` raises only ``ProtocolError``,
   folding the log again from scratch rebuilds the live state exactly, at most
   one question is on stage, and the views never show what a role may not see.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livehub import protocol as p
from livehub.protocol import JSON, MSGPACK, Codec, ErrorCode, ProtocolError, parse_request
from livehub.roles import Role
from livehub.room import (
    ANONYMOUS_NAME,
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
from tests.unit.test_room import snapshot

BOUNDED = settings(max_examples=200, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PARSE_CODES = {ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_TYPE}
ROLES = (Role.PARTICIPANT, Role.SPEAKER, Role.MODERATOR)
INTERNAL = ("by", "by_name", "prev", "of", "of_name", "pending")
T0 = 1_700_000_000_000


def parse_outcome(codec: Codec, data: bytes | str) -> p.Request | ErrorCode:
    """The request, or the error code: never any other exception."""
    try:
        req = parse_request(codec, data)
    except ProtocolError as exc:
        assert exc.code in PARSE_CODES, exc.code
        assert exc.rid is None or 1 <= len(exc.rid) <= 64
        return exc.code
    assert isinstance(req, p.Request)
    assert type(req) is p.REQUEST_TYPES[req.t]
    return req


# --- 1. parsing never raises anything but ProtocolError ----------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
KNOWN_KEYS = sorted({f for cls in p.REQUEST_TYPES.values() for f in cls.__struct_fields__}
                    | {"t"})

scalars = st.one_of(st.none(), st.booleans(), INT64, FINITE, st.text(max_size=20),
                    st.sampled_from(sorted(p.REQUEST_TYPES)))
# Values both codecs can carry and read the same way.
shared_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(KNOWN_KEYS), inner, max_size=4),
    max_leaves=12,
)
json_values = st.recursive(
    st.one_of(scalars, st.integers(), st.floats()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
msgpack_values = st.recursive(
    st.one_of(scalars, st.floats(), st.binary(max_size=10)),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.one_of(st.text(max_size=8), INT64, st.binary(max_size=4),
                                st.booleans(), st.none()), inner, max_size=4),
    max_leaves=12,
)
# Maps close to real requests: a known ``t`` and known keys with arbitrary values.
near_requests = st.fixed_dictionaries(
    {"t": st.sampled_from(sorted(p.REQUEST_TYPES))},
    optional={key: shared_values for key in KNOWN_KEYS if key != "t"},
)


@BOUNDED
@given(json_values)
def test_any_json_value_parses_or_is_refused(value: Any) -> None:
    data = json.dumps(value)
    parse_outcome(JSON, data)
    parse_outcome(JSON, data.encode())


@BOUNDED
@given(msgpack_values)
def test_any_msgpack_value_parses_or_is_refused(value: Any) -> None:
    parse_outcome(MSGPACK, msgpack.packb(value, use_bin_type=True))


@BOUNDED
@given(st.one_of(near_requests, shared_values))
def test_both_codecs_agree_on_every_map(value: Any) -> None:
    from_json = parse_outcome(JSON, json.dumps(value))
    from_msgpack = parse_outcome(MSGPACK, msgpack.packb(value, use_bin_type=True))
    assert from_json == from_msgpack


@BOUNDED
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    parse_outcome(MSGPACK, data)
    parse_outcome(JSON, data)


@BOUNDED
@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused(data: str) -> None:
    parse_outcome(JSON, data)
    assert parse_outcome(MSGPACK, data) == ErrorCode.BAD_FRAME


@BOUNDED
@given(st.text(alphabet=st.characters(codec=None), max_size=30))
def test_any_code_points_in_text_parse_or_are_refused(text: str) -> None:
    # ``codec=None`` lets lone surrogates in: a JSON text frame can never carry them.
    outcome = parse_outcome(JSON, '{"t": "post", "text": ' + json.dumps(text) + "}")
    if isinstance(outcome, p.Post):
        assert outcome.text == text
        assert not p.has_forbidden_control(text)


@BOUNDED
@given(near_requests)
def test_parsed_requests_round_trip(value: dict[str, Any]) -> None:
    outcome = parse_outcome(MSGPACK, msgpack.packb(value, use_bin_type=True))
    if isinstance(outcome, p.Request):
        fields = {f: getattr(outcome, f) for f in outcome.__struct_fields__}
        again = {"t": outcome.t, **{k: v for k, v in fields.items() if v is not None}}
        assert parse_outcome(JSON, json.dumps(again)) == outcome


# --- 2. the room core over arbitrary request sequences -----------------------------------------

ACTORS = (
    Actor("u-pat", "Pat", Role.PARTICIPANT),
    Actor("u-pam", "Pam", Role.PARTICIPANT),
    Actor("g-gus", "Gus", Role.PARTICIPANT, guest=True),
    Actor("u-sam", "Sam", Role.SPEAKER),
    Actor("u-mo", "Mo", Role.MODERATOR),
    Actor("u-max", "Max", Role.MODERATOR),
)
MAX_TEXT = 12
# A reference to a post or question is an index into those accepted so far (see
# ``resolve``); -1 names one that never existed.
REFS = st.integers(-1, 7)
UIDS = st.sampled_from([a.uid for a in ACTORS] + ["u-ghost"])
TEXTS = st.sampled_from(["hi", "hi", "a longer one", "\N{GRINNING FACE}" * MAX_TEXT, "",
                         "x" * (MAX_TEXT + 1)])
QSTATES = st.sampled_from(["pending", "open", "answering", "answering", "answered", "dismissed"])


def _maybe(key: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


def _req(t: str, **parts: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"t": st.just(t), **parts})


posts = st.tuples(_req("post", text=TEXTS), _maybe("reply_to", REFS)).map(lambda x: x[0] | x[1])
asks = _req("ask", text=TEXTS, anonymous=st.booleans())
votes = _req("vote", qid=REFS, up=st.booleans())
qstates = _req("qstate", qid=REFS, state=QSTATES)
pins = st.one_of(_req("pin", mid=REFS), _req("unpin", mid=REFS))
dels = st.tuples(
    st.sampled_from(["mid", "qid"]), REFS, st.one_of(st.none(), st.booleans(), st.integers(1, 120)),
).map(lambda x: {"t": "del", x[0]: x[1], **({} if x[2] is None else {"mute": x[2]})})
moderation = st.one_of(
    st.tuples(_req("mute", uid=UIDS), _maybe("seconds", st.integers(1, 120)))
    .map(lambda x: x[0] | x[1]),
    _req("unmute", uid=UIDS),
    _req("ban", uid=UIDS),
    _req("unban", uid=UIDS),
    st.fixed_dictionaries({"t": st.just("settings")}, optional={
        "slow_mode": st.integers(0, 5), "guests": st.booleans(),
        "premoderate": st.booleans(), "state": st.sampled_from(["open", "closed"])}),
)
polls = st.one_of(
    _req("poll", question=st.sampled_from(["Which?", "", "Q" * 301]),
         options=st.sampled_from([["a", "b"], ["a", "b", "c"], ["a", ""]]), multi=st.booleans()),
    _req("ballot", pid=REFS, choices=st.lists(st.integers(0, 3), min_size=1, max_size=3)),
    _req("ballot", pid=REFS, choices=st.lists(st.integers(0, 1), min_size=1, max_size=1)),
    _req("pollstate", pid=REFS, state=st.sampled_from(["open", "closed"])),
)
# Repeats weight the draw towards the requests that build up state.
requests = st.one_of(
    posts, posts, asks, asks, votes, votes, votes, qstates, qstates, qstates,
    _req("answer", qid=REFS, text=TEXTS), pins, dels, moderation, _req("ping"), polls, polls,
)
# (actor, request, ms that pass before it). Anyone may send anything, but staff
# requests come from staff and moderation from moderators more often than chance
# would have it, so that stage changes, pins and mutes happen.
DELAYS = st.sampled_from([0, 300, 1_500, 6_000, 70_000])
steps = st.one_of(
    st.tuples(st.sampled_from(range(len(ACTORS))), requests, DELAYS),
    st.tuples(st.sampled_from(range(len(ACTORS))), votes, DELAYS),
    st.tuples(st.sampled_from([3, 4, 5]),
              st.one_of(qstates, qstates, _req("answer", qid=REFS, text=TEXTS), pins), DELAYS),
    st.tuples(st.sampled_from([4, 5]), st.one_of(moderation, dels), DELAYS),
)
# A batch is decided against one state, then committed: two in a batch have raced.
batches = st.lists(steps, min_size=1, max_size=2)
programs = st.lists(batches, min_size=8, max_size=50)
room_settings = st.builds(RoomSettings, slow_mode=st.sampled_from([0, 0, 2]),
                          guests=st.booleans(), premoderate=st.booleans())


# Every program starts from a room with two posts and two questions in it.
PRELUDE = [
    [(0, {"t": "post", "text": "first"}, 0)],
    [(3, {"t": "post", "text": "second"}, 0)],
    [(1, {"t": "ask", "text": "one?", "anonymous": True}, 0)],
    [(2, {"t": "ask", "text": "two?"}, 0)],
]


def resolve(obj: dict[str, Any], mids: list[str], qids: list[str],
            pids: list[str] | None = None) -> dict[str, Any]:
    """Turn the index references of a generated request into ids."""
    out = dict(obj)
    for key, pool in (("mid", mids), ("reply_to", mids), ("qid", qids), ("pid", pids or [])):
        ref = out.get(key)
        if isinstance(ref, int):
            out[key] = pool[ref % len(pool)] if pool and ref >= 0 else "nope"
    return out


def fresh(initial: RoomSettings) -> RoomState:
    return RoomState("r", settings=RoomSettings(**initial.to_wire()))


def rebuild(initial: RoomSettings, log: list[Event]) -> RoomState:
    state = fresh(initial)
    for ev in log:
        apply(state, ev)
    return state


def check_invariants(state: RoomState) -> None:
    on_stage = [q.qid for q in state.questions.values() if q.state == "answering"]
    assert len(on_stage) <= 1, on_stage
    assert state.answering == (on_stage[0] if on_stage else None)
    assert set(state.pinned) <= set(state.messages)
    assert not set(state.messages) & state.deleted
    assert not set(state.questions) & state.deleted
    for q in state.questions.values():
        assert q.state in ("pending", "open", "answering", "answered", "dismissed")
    for poll in state.polls.values():
        recount = [sum(i in b for b in poll.ballots.values()) for i in range(len(poll.options))]
        assert poll.counts == recount and min(poll.counts) >= 0
        assert poll.state in ("open", "closed")
        assert all(len(b) == 1 for b in poll.ballots.values()) or poll.multi


def check_view(state: RoomState, ev: Event, role: Role) -> None:
    v = view(state, ev, role)
    if v is None:
        return
    assert v["seq"] == ev["seq"]
    assert v["t"] != "ballot"  # nobody is told who chose what
    if role is not Role.MODERATOR:
        assert not any(k in v for k in INTERNAL), v
        assert v["t"] not in ("ban", "unban", "vote")
        if v["t"] == "q" and v.get("anonymous"):
            assert v["uid"] is None
            assert v["name"] == ANONYMOUS_NAME
            assert "guest" not in v
    if not role.is_staff:
        assert not (v["t"] == "q" and v["state"] == "pending")


def check_welcome(state: RoomState, log: list[Event], role: Role) -> None:
    assert len(history(state)) <= 100
    assert all(ev["mid"] in state.messages for ev in pinned(state))
    for q in questions_view(state, role):
        assert q["state"] in ("open", "answering", "pending")
        if not role.is_staff:
            assert q["state"] != "pending"
        if q.get("anonymous") and role is not Role.MODERATOR:
            assert q["uid"] is None
    if not role.is_staff:
        # Replayed from the start, a participant meets each question before hearing of it.
        met: set[str] = set()
        for ev in replay(state, log, role):
            if ev["t"] == "q":
                met.add(ev["qid"])
            elif ev["t"] in ("qstate", "answer", "votes"):
                assert ev["qid"] in met, ev
    for start in (0, len(log) // 2):
        out = replay(state, log[start:], role)
        seqs = [ev["seq"] for ev in out]
        assert seqs == sorted(seqs)
        votes = [ev["qid"] for ev in out if ev["t"] == "votes"]
        assert len(votes) == len(set(votes))
        tallies = [ev["pid"] for ev in out if ev["t"] == "tally"]
        assert len(tallies) == len(set(tallies))
        assert not any(ev["t"] == "ballot" for ev in out)
        for ev in out:
            if ev["t"] == "tally":
                assert ev["counts"] == state.polls[ev["pid"]].counts
        for ev in out:
            if ev["t"] == "votes":
                assert ev["votes"] == state.questions[ev["qid"]].votes
            if ev["t"] in ("msg", "pin", "unpin"):
                assert ev["mid"] not in state.deleted
            if ev["t"] in ("q", "answer", "qstate", "votes"):
                assert ev["qid"] not in state.deleted


def run(initial: RoomSettings, program: list[list[tuple[int, dict[str, Any], int]]]
        ) -> tuple[RoomState, list[Event]]:
    state = fresh(initial)
    log: list[Event] = []
    now = T0
    made: dict[str, list[str]] = {"post": [], "ask": [], "poll": []}
    met: set[str] = set()  # the questions a participant following live has met
    for batch in program:
        decided: list[Event] = []
        for actor_index, obj, dt in batch:
            now += dt
            # every generated map is a valid frame
            req = p.to_request(resolve(obj, made["post"], made["ask"], made["poll"]))
            ctx = Context(now=now, new_id=f"id{len(log) + len(decided) + 1}",
                          max_text=MAX_TEXT)
            try:
                decision = decide(state, ACTORS[actor_index], req, ctx)
            except ProtocolError as exc:
                assert exc.code in ErrorCode
                continue
            for ev in decision.events:
                assert "seq" not in ev
                assert ev["ts"] == now
            if decision.ref is not None:
                assert decision.ref == ctx.new_id
                made[req.t].append(decision.ref)
            if req.t == "poll":
                made["poll"].append(decision.reply["pid"])
            decided.extend(decision.events)
        for ev in decided:
            committed = {**ev, "seq": state.seq + 1}
            apply(state, committed)
            log.append(committed)
            for role in ROLES:
                check_view(state, committed, role)
            seen = view(state, committed, Role.PARTICIPANT)
            if seen is not None and seen["t"] == "q":
                met.add(seen["qid"])
            elif seen is not None and seen["t"] in ("qstate", "answer"):
                assert seen["qid"] in met, seen
        check_invariants(state)
    return state, log


@BOUNDED
@given(room_settings, programs)
def test_decide_and_apply_over_any_request_sequence(initial: RoomSettings,
                                                    program: list[Any]) -> None:
    live, log = run(initial, PRELUDE + program)
    assert [ev["seq"] for ev in log] == list(range(1, len(log) + 1))
    first = rebuild(initial, log)
    second = rebuild(initial, log)
    assert snapshot(first) == snapshot(second) == snapshot(live)
    check_invariants(first)
    for role in ROLES:
        check_welcome(live, log, role)


@BOUNDED
@given(room_settings, programs)
def test_decide_is_pure(initial: RoomSettings, program: list[Any]) -> None:
    state, _ = run(initial, PRELUDE + program)
    before = snapshot(state)
    for actor in ACTORS:
        for obj in ({"t": "post", "text": "x"}, {"t": "vote", "qid": "id3"},
                    {"t": "qstate", "qid": "id4", "state": "answering"},
                    {"t": "del", "qid": "id3", "mute": True}, {"t": "ban", "uid": "u-pat"},
                    {"t": "del", "mid": "id1"}, {"t": "pin", "mid": "id2"}):
            try:
                decide(state, actor, p.to_request(obj), Context(now=T0, new_id="fresh"))
            except ProtocolError:
                pass
            assert snapshot(state) == before


def test_racing_qstates_still_leave_one_question_on_stage() -> None:
    # A fixed instance of what the property explores: four stage changes decided together.
    program = [
        [(3, {"t": "ask", "text": "a"}, 0)],
        [(3, {"t": "ask", "text": "b"}, 0)],
        [(3, {"t": "ask", "text": "c"}, 0)],
        [(3, {"t": "qstate", "qid": "id1", "state": "answering"}, 0)],
        [(3, {"t": "qstate", "qid": "id2", "state": "answering"}, 0),
         (4, {"t": "qstate", "qid": "id3", "state": "answering"}, 0)],
    ]
    state, log = run(RoomSettings(), program)
    assert [(ev["qid"], ev["state"]) for ev in log if ev["t"] == "qstate"] == [
        ("id1", "answering"), ("id1", "answered"), ("id2", "answering"),
        ("id1", "answered"), ("id3", "answering")]
    assert {q.qid: q.state for q in state.questions.values()} == {
        "id1": "answered", "id2": "answered", "id3": "answering"}


def test_nan_is_valid_msgpack_but_not_json() -> None:
    # The one place the codecs may disagree: JSON has no NaN.
    value = {"t": "ping", "x": math.nan}
    assert isinstance(parse_outcome(MSGPACK, msgpack.packb(value)), p.Ping)
    assert parse_outcome(JSON, json.dumps(value)) == ErrorCode.BAD_FRAME
