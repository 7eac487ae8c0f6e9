"""Roles and moderation through a real server: every cell of the role matrix."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from livehub.roles import PERMISSIONS, Role
from tests.support import Client, LivehubProcess, token

ROLES = ["participant", "speaker", "moderator"]


@dataclass
class Cast:
    room: str
    clients: dict[str, Client]
    target: Client  # a participant whose post and question the others act on
    mid: str
    qid: str
    pid: str  # an open poll

    async def close(self) -> None:
        for c in [*self.clients.values(), self.target]:
            await c.close()


async def cast(server: LivehubProcess, room: str) -> Cast:
    clients = {role: await Client.join(server.ws_url, room,
                                       token=token(role, f"The {role}", sub=f"{role}-1"))
               for role in ROLES}
    target = await Client.join(server.ws_url, room,
                               token=token("participant", "Target", sub="target-1"))
    mid = (await target.request({"t": "post", "text": "a post to act on"}))["mid"]
    qid = (await target.request({"t": "ask", "text": "a question to act on"}))["qid"]
    pid = (await clients["speaker"].request({"t": "poll", "question": "a poll to act on",
                                             "options": ["a", "b"]}))["pid"]
    return Cast(room, clients, target, mid, qid, pid)


def frame_for(t: str, c: Cast) -> dict[str, Any]:
    """A request of type ``t`` that is valid whenever the role may send it."""
    return {
        "post": {"text": "hello"},
        "ask": {"text": "a question?"},
        "vote": {"qid": c.qid, "up": True},
        "ping": {},
        "del": {"mid": c.mid},
        "answer": {"qid": c.qid, "text": "an answer"},
        "qstate": {"qid": c.qid, "state": "answering"},
        "pin": {"mid": c.mid},
        "unpin": {"mid": c.mid},
        "mute": {"uid": "target-1", "seconds": 60},
        "unmute": {"uid": "target-1"},
        "ban": {"uid": "target-1"},
        "unban": {"uid": "target-1"},
        "settings": {"slow_mode": 5},
        "poll": {"question": "another poll?", "options": ["yes", "no"]},
        "ballot": {"pid": c.pid, "choices": [0]},
        "pollstate": {"pid": c.pid, "state": "closed"},
        "report": {"mid": c.mid, "reason": "spam"},
        "react": {"mid": c.mid, "emoji": "heart"},
        "resolve": {"rid": "r-none"},
        "release": {"mid": c.mid},
    }[t] | {"t": t}


def expected(t: str, role: str) -> str:
    """The matrix of PROTOCOL.md: `del` of someone else's post is for moderators only."""
    if t == "del":
        return "ok" if role == "moderator" else "forbidden"
    if t in ("resolve", "release") and role == "moderator":
        return "not_found"  # allowed; there is no such report or held post
    return "ok" if Role(role) in PERMISSIONS[t] else "forbidden"


CELLS = [(t, role) for t in PERMISSIONS for role in ROLES]


@pytest.mark.parametrize(("t", "role"), CELLS, ids=[f"{t}-{r}" for t, r in CELLS])
async def test_role_matrix_cell(rooms_server: LivehubProcess, fresh_room: Callable[[], str],
                                t: str, role: str) -> None:
    c = await cast(rooms_server, fresh_room())
    answer = await c.clients[role].request(frame_for(t, c))
    want = expected(t, role)
    assert (answer["t"] if answer["t"] == "ok" else answer["code"]) == want, answer
    if want == "forbidden":
        # Nothing changed: a late joiner sees the post and question as they were.
        late = await Client.join(rooms_server.ws_url, c.room, name="Late")
        assert [m["mid"] for m in late.welcome["history"]] == [c.mid]
        assert [q["state"] for q in late.welcome["questions"]] == ["open"]
        assert late.welcome["pinned"] == []
        assert late.welcome["room"]["settings"]["slow_mode"] == 0
        assert [(p["state"], p["counts"]) for p in late.welcome["polls"]] == [("open", [0, 0])]
        await late.close()
        # ...and the refused connection stays open and usable.
        assert (await c.clients[role].request({"t": "ping"}))["t"] == "ok"
    await c.close()


@pytest.mark.parametrize("role", ROLES)
async def test_authors_may_delete_their_own_posts_and_questions(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str], role: str) -> None:
    room = fresh_room()
    me = await Client.join(rooms_server.ws_url, room, token=token(role, sub=f"{role}-own"))
    mid = (await me.request({"t": "post", "text": "mine"}))["mid"]
    qid = (await me.request({"t": "ask", "text": "mine?"}))["qid"]
    assert (await me.request({"t": "del", "mid": mid}))["t"] == "ok"
    assert (await me.request({"t": "del", "qid": qid}))["t"] == "ok"
    await me.close()


async def test_muted_user_cannot_post_or_ask_but_may_vote(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    mod = c.clients["moderator"]
    assert (await mod.request({"t": "mute", "uid": "target-1"}))["t"] == "ok"
    mute = await c.target.recv_until(lambda e: e["t"] == "mute")
    assert mute["uid"] == "target-1" and mute["until"] is None
    for frame in ({"t": "post", "text": "x"}, {"t": "ask", "text": "y?"}):
        refused = await c.target.request(frame)
        assert refused["t"] == "error" and refused["code"] == "muted"
    assert (await c.target.request({"t": "vote", "qid": c.qid, "up": True}))["t"] == "ok"
    # Until lifted: unmute lifts it.
    assert (await mod.request({"t": "unmute", "uid": "target-1"}))["t"] == "ok"
    await c.target.recv_until(lambda e: e["t"] == "unmute")
    assert (await c.target.request({"t": "post", "text": "back"}))["t"] == "ok"
    await c.close()


async def test_timed_mute_lifts_itself_on_time(rooms_server: LivehubProcess,
                                               fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    ok = await c.clients["moderator"].request({"t": "mute", "uid": "target-1", "seconds": 1})
    assert ok["t"] == "ok"
    mute = await c.target.recv_until(lambda e: e["t"] == "mute")
    assert mute["until"] is not None
    assert (await c.target.request({"t": "post", "text": "too soon"}))["code"] == "muted"
    await asyncio.sleep(1.2)  # no request is made meanwhile: expiry needs none
    assert (await c.target.request({"t": "post", "text": "free again"}))["t"] == "ok"
    await c.close()


async def test_ban_closes_every_connection_and_refuses_rejoining(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    second = await Client.join(rooms_server.ws_url, c.room,
                               token=token("participant", "Target", sub="target-1"))
    assert (await c.clients["moderator"].request({"t": "ban", "uid": "target-1"}))["t"] == "ok"
    for conn in (c.target, second):
        assert (await conn.expect_close()).code == 4403
    # A new token for the same user is refused too.
    again = await Client.connect(rooms_server.ws_url, c.room)
    await again.send({"t": "hello", "token": token("participant", "Target", sub="target-1")})
    assert (await again.expect_close()).code == 4403
    # Others are unaffected, and the moderator can lift the ban.
    assert (await c.clients["participant"].request({"t": "ping"}))["t"] == "ok"
    assert (await c.clients["moderator"].request({"t": "unban", "uid": "target-1"}))["t"] == "ok"
    back = await Client.join(rooms_server.ws_url, c.room,
                             token=token("participant", "Target", sub="target-1"))
    await back.close()
    for role in ROLES:
        await c.clients[role].close()


async def test_closed_room_refuses_posts_and_questions_but_not_joining(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    mod = c.clients["moderator"]
    assert (await mod.request({"t": "settings", "state": "closed"}))["t"] == "ok"
    ev = await c.target.recv_until(lambda e: e["t"] == "room")
    assert ev["state"] == "closed"
    for role in ("participant", "speaker"):
        for frame in ({"t": "post", "text": "x"}, {"t": "ask", "text": "y?"}):
            answer = await c.clients[role].request(frame)
            assert answer["t"] == "error" and answer["code"] == "room_closed"
    assert (await c.clients["participant"].request(
        {"t": "vote", "qid": c.qid, "up": True}))["t"] == "ok"
    late = await Client.join(rooms_server.ws_url, c.room, name="Late")
    assert late.welcome["room"]["state"] == "closed"
    await late.close()
    assert (await mod.request({"t": "settings", "state": "open"}))["t"] == "ok"
    assert (await c.clients["participant"].request({"t": "post", "text": "open"}))["t"] == "ok"
    await c.close()


async def test_settings_reach_everyone_and_late_joiners(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    ok = await c.clients["moderator"].request(
        {"t": "settings", "slow_mode": 30, "premoderate": True, "guests": False})
    assert ok["t"] == "ok"
    ev = await c.target.recv_until(lambda e: e["t"] == "room")
    assert ev["settings"] == {"slow_mode": 30, "guests": False, "premoderate": True}
    assert "by" not in ev  # who did it is for moderators' eyes
    mod_ev = await c.clients["moderator"].recv_until(lambda e: e["t"] == "room")
    assert mod_ev["by"] == "moderator-1"
    # The target posted moments ago (in cast), so slow mode holds it back.
    assert (await c.target.request({"t": "post", "text": "two"}))["code"] == "slow_mode"
    assert (await c.clients["speaker"].request({"t": "post", "text": "a"}))["t"] == "ok"
    assert (await c.clients["speaker"].request({"t": "post", "text": "b"}))["t"] == "ok"
    guest = await Client.connect(rooms_server.ws_url, c.room)
    await guest.send({"t": "hello", "name": "Guest"})
    assert (await guest.expect_close()).code == 4401
    await c.close()


async def test_deleted_posts_are_gone_for_late_joiners(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    mod = c.clients["moderator"]
    keep = (await c.target.request({"t": "post", "text": "keep me"}))["mid"]
    assert (await mod.request({"t": "pin", "mid": c.mid}))["t"] == "ok"
    assert (await mod.request({"t": "del", "mid": c.mid}))["t"] == "ok"
    assert (await mod.request({"t": "del", "qid": c.qid}))["t"] == "ok"
    ev = await c.clients["participant"].recv_until(lambda e: e["t"] == "del" and "mid" in e)
    assert ev["mid"] == c.mid
    late = await Client.join(rooms_server.ws_url, c.room, name="Late")
    assert [m["mid"] for m in late.welcome["history"]] == [keep]
    assert late.welcome["pinned"] == [] and late.welcome["questions"] == []
    # Acting on what is gone is not_found.
    assert (await mod.request({"t": "pin", "mid": c.mid}))["code"] == "not_found"
    await late.close()
    await c.close()


async def test_remove_a_question_and_mute_its_asker_in_one_step(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    anon = (await c.target.request({"t": "ask", "text": "rude", "anonymous": True}))["qid"]
    q = await c.clients["moderator"].recv_until(lambda e: e["t"] == "q" and e["qid"] == anon)
    assert q["uid"] == "target-1"  # moderators see who asked, for safeguarding
    ok = await c.clients["moderator"].request({"t": "del", "qid": anon, "mute": 300})
    assert ok["t"] == "ok"
    assert (await c.target.request({"t": "post", "text": "x"}))["code"] == "muted"
    await c.close()


async def test_moderation_record_is_in_the_log(rooms_server: LivehubProcess,
                                               fresh_room: Callable[[], str]) -> None:
    """Every moderation action is a sequenced event naming who did it (moderators' copy)."""
    c = await cast(rooms_server, fresh_room())
    mod = c.clients["moderator"]
    for frame in ({"t": "mute", "uid": "target-1", "seconds": 60},
                  {"t": "pin", "mid": c.mid}, {"t": "del", "mid": c.mid},
                  {"t": "ban", "uid": "target-1"}):
        assert (await mod.request(frame))["t"] == "ok"
    watcher = await Client.join(rooms_server.ws_url, c.room,
                                token=token("moderator", "Auditor", sub="auditor"), since=0)
    # (the pin of the since-deleted post is left out of a replay, like the post itself)
    record = [e for e in watcher.welcome["history"]
              if e["t"] in ("mute", "pin", "del", "ban")]
    assert [e["t"] for e in record] == ["mute", "del", "ban"]
    assert all(e["by"] == "moderator-1" and isinstance(e["ts"], int) for e in record)
    await watcher.close()
    for role in ROLES:
        await c.clients[role].close()


async def test_welcome_tells_a_user_their_mute_and_votes_and_moderators_the_record(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    c = await cast(rooms_server, fresh_room())
    mod = c.clients["moderator"]
    assert (await c.target.request({"t": "vote", "qid": c.qid, "up": True}))["t"] == "ok"
    assert (await mod.request({"t": "mute", "uid": "target-1", "seconds": 600}))["t"] == "ok"
    assert (await mod.request({"t": "ban", "uid": "participant-1"}))["t"] == "ok"
    again = await Client.join(rooms_server.ws_url, c.room,
                              token=token("participant", "Target", sub="target-1"))
    me = again.welcome["me"]
    assert me["votes"] == [c.qid] and isinstance(me["muted_until"], int)
    assert "moderation" not in again.welcome
    watcher = await Client.join(rooms_server.ws_url, c.room,
                                token=token("moderator", "Auditor", sub="auditor"))
    record = watcher.welcome["moderation"]
    assert [(m["uid"], m["name"]) for m in record["mutes"]] == [("target-1", "Target")]
    assert [b["uid"] for b in record["bans"]] == ["participant-1"]
    assert "muted_until" not in watcher.welcome["me"]
    for client in (again, watcher, mod, c.target, c.clients["speaker"]):
        await client.close()
