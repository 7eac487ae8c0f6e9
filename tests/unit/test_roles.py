"""The role matrix against PROTOCOL.md's "who" column, and its use by the room core."""

from __future__ import annotations

import msgspec
import pytest

from livehub import protocol as p
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import (
    ALL,
    CLOSED_ROOM_EXEMPT,
    MODERATORS,
    PERMISSIONS,
    SLOW_MODE_EXEMPT,
    STAFF,
    Role,
    may,
    parse_role,
)
from livehub.room import Actor, Context, RoomState, decide

P, S, M = Role.PARTICIPANT, Role.SPEAKER, Role.MODERATOR

# PROTOCOL.md, "Requests (client to server)", column "who". ``del`` says "moderator,
# or the author of it": any role may send it, the room core checks authorship.
# ``unban`` and ``ping`` are this server's extensions.
WHO: dict[str, set[Role]] = {
    "post": {P, S, M},      # anyone not muted
    "ask": {P, S, M},       # anyone not muted
    "vote": {P, S, M},      # anyone
    "answer": {S, M},
    "qstate": {S, M},
    "pin": {S, M},
    "unpin": {S, M},
    "del": {P, S, M},
    "mute": {M},
    "unmute": {M},
    "ban": {M},
    "settings": {M},
    "unban": {M},
    "ping": {P, S, M},
    "poll": {S, M},
    "pollstate": {S, M},
    "ballot": {P, S, M},
    "report": {P, S, M},    # anyone who can see the item
    "react": {P, S, M},     # anyone who may post
    "resolve": {M},
    "release": {M},
}

MATRIX = [(t, role) for t in WHO for role in Role]


@pytest.mark.parametrize(("request_type", "role"), MATRIX,
                         ids=[f"{t}-{r}" for t, r in MATRIX])
def test_may_matches_the_protocol(request_type: str, role: Role) -> None:
    assert may(role, request_type) is (role in WHO[request_type])


def test_every_room_request_type_is_in_the_table() -> None:
    room_requests = set(p.REQUEST_TYPES) - {"hello"}
    assert set(PERMISSIONS) == room_requests == set(WHO)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("request_type", ["hello", "error", "", "POST", "nope"])
def test_may_refuses_what_is_not_a_room_request(role: Role, request_type: str) -> None:
    assert may(role, request_type) is False


def test_role_order_and_staff() -> None:
    assert [str(r) for r in Role] == ["participant", "speaker", "moderator"]
    assert [r.is_staff for r in Role] == [False, True, True]
    assert ALL == {P, S, M}
    assert STAFF == {S, M}
    assert MODERATORS == {M}


def test_exemptions() -> None:
    assert SLOW_MODE_EXEMPT == {S, M}  # "speakers and moderators are exempt"
    assert CLOSED_ROOM_EXEMPT == {M}


@pytest.mark.parametrize("value", ["participant", "speaker", "moderator"])
def test_parse_role_accepts_the_three(value: str) -> None:
    assert parse_role(value) is Role(value)


@pytest.mark.parametrize("value", ["admin", "Moderator", "", " speaker", None, 1, ["speaker"],
                                   b"speaker"])
def test_parse_role_refuses_anything_else(value: object) -> None:
    assert parse_role(value) is None


# --- the room core consults the table first ------------------------------------------------

SAMPLES: dict[str, p.Request] = {
    "post": p.Post(text="hi"),
    "ask": p.Ask(text="q"),
    "vote": p.Vote(qid="nope"),
    "answer": p.Answer(qid="nope", text="a"),
    "qstate": p.SetQState(qid="nope", state="open"),
    "pin": p.Pin(mid="nope"),
    "unpin": p.Unpin(mid="nope"),
    "del": p.Delete(mid="nope"),
    "mute": p.Mute(uid="u-other"),
    "unmute": p.Unmute(uid="u-other"),
    "ban": p.Ban(uid="u-other"),
    "unban": p.Unban(uid="u-other"),
    "settings": p.Settings(slow_mode=1),
    "ping": p.Ping(),
    "poll": p.OpenPoll(question="q", options=["a", "b"]),
    "pollstate": p.SetPollState(pid="nope", state="closed"),
    "ballot": p.Ballot(pid="nope", choices=[0]),
    "report": p.Report(mid="nope", reason="spam"),
    "react": p.React(mid="nope", emoji="heart"),
    "resolve": p.Resolve(rid="nope"),
    "release": p.Release(mid="nope"),
}

FORBIDDEN = [(t, role) for t, role in MATRIX if role not in WHO[t]]


def test_samples_cover_every_request_type() -> None:
    assert set(SAMPLES) == set(WHO)
    assert all(req.t == t for t, req in SAMPLES.items())


@pytest.mark.parametrize(("request_type", "role"), FORBIDDEN,
                         ids=[f"{t}-{r}" for t, r in FORBIDDEN])
def test_decide_refuses_roles_outside_the_table_with_forbidden(request_type: str,
                                                               role: Role) -> None:
    state = RoomState("r")
    req = msgspec.structs.replace(SAMPLES[request_type], id="rid-1")
    with pytest.raises(ProtocolError) as info:
        decide(state, Actor("u1", "U", role), req, Context(now=0, new_id="n1"))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert info.value.rid == "rid-1"
    assert state.seq == 0


ALLOWED = [(t, role) for t, role in MATRIX if role in WHO[t]]


@pytest.mark.parametrize(("request_type", "role"), ALLOWED,
                         ids=[f"{t}-{r}" for t, r in ALLOWED])
def test_decide_lets_roles_in_the_table_past_the_role_check(request_type: str,
                                                            role: Role) -> None:
    state = RoomState("r")
    try:
        decide(state, Actor("u1", "U", role), SAMPLES[request_type],
               Context(now=0, new_id="n1"))
    except ProtocolError as exc:  # the samples name nothing that exists
        assert exc.code == ErrorCode.NOT_FOUND
