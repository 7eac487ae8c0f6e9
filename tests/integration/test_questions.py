"""Live Q&A through a real server: asking, voting, anonymity, pre-moderation, the stage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.support import Client, LivehubProcess, token


async def join(server: LivehubProcess, room: str, role: str, sub: str, **hello: Any) -> Client:
    return await Client.join(server.ws_url, room, token=token(role, sub.title(), sub=sub),
                             **hello)


async def test_ask_reaches_everyone_with_zero_votes(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    asker = await join(rooms_server, room, "participant", "ann")
    other = await join(rooms_server, room, "participant", "bob")
    ok = await asker.request({"t": "ask", "text": "Will the consultation be extended?"})
    assert ok["t"] == "ok" and ok["qid"] and isinstance(ok["seq"], int)
    q = await other.recv_until(lambda e: e["t"] == "q")
    assert q == {**q, "qid": ok["qid"], "uid": "ann", "name": "Ann", "votes": 0,
                 "state": "open", "seq": ok["seq"],
                 "text": "Will the consultation be extended?"}
    await asker.close()
    await other.close()


async def test_votes_count_once_per_user_and_can_be_withdrawn(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    asker = await join(rooms_server, room, "participant", "ann")
    voters = [await join(rooms_server, room, "participant", f"v{i}") for i in range(3)]
    qid = (await asker.request({"t": "ask", "text": "Q?"}))["qid"]
    for v in voters:
        assert (await v.request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    # A double vote changes nothing.
    assert (await voters[0].request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    ev = await asker.recv_until(lambda e: e["t"] == "votes" and e["votes"] == 3)
    assert ev["qid"] == qid
    # Withdrawing takes one away; withdrawing twice changes nothing more.
    assert (await voters[1].request({"t": "vote", "qid": qid, "up": False}))["t"] == "ok"
    assert (await voters[1].request({"t": "vote", "qid": qid, "up": False}))["t"] == "ok"
    await asker.recv_until(lambda e: e["t"] == "votes" and e["votes"] == 2)
    late = await join(rooms_server, room, "participant", "late")
    assert [q["votes"] for q in late.welcome["questions"]] == [2]
    for c in (asker, *voters, late):
        await c.close()


async def test_questions_are_ranked_by_votes_then_age(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    a = await join(rooms_server, room, "participant", "ann")
    b = await join(rooms_server, room, "participant", "bob")
    q1 = (await a.request({"t": "ask", "text": "first"}))["qid"]
    q2 = (await a.request({"t": "ask", "text": "second"}))["qid"]
    q3 = (await a.request({"t": "ask", "text": "third"}))["qid"]
    await b.request({"t": "vote", "qid": q3, "up": True})
    late = await join(rooms_server, room, "participant", "late")
    assert [q["qid"] for q in late.welcome["questions"]] == [q3, q1, q2]
    for c in (a, b, late):
        await c.close()


async def test_anonymous_questions_hide_the_asker_except_from_moderators(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    people = {role: await join(rooms_server, room, role, f"{role}-x")
              for role in ("participant", "speaker", "moderator")}
    asker = await join(rooms_server, room, "participant", "shy")
    qid = (await asker.request({"t": "ask", "text": "sensitive", "anonymous": True}))["qid"]
    for role, c in people.items():
        q = await c.recv_until(lambda e: e["t"] == "q" and e["qid"] == qid)
        if role == "moderator":
            assert q["uid"] == "shy" and q["name"] == "Shy"
        else:
            assert q["uid"] is None and q["name"] == "Anonymous"
        assert q["anonymous"] is True
    for role, c in people.items():
        late = await join(rooms_server, room, role, f"{role}-late")
        (q,) = late.welcome["questions"]
        assert (q["uid"] == "shy") == (role == "moderator")
        await late.close()
        await c.close()
    await asker.close()


async def test_premoderated_questions_wait_for_approval(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    mod = await join(rooms_server, room, "moderator", "mod")
    assert (await mod.request({"t": "settings", "premoderate": True}))["t"] == "ok"
    part = await join(rooms_server, room, "participant", "part")
    speaker = await join(rooms_server, room, "speaker", "spk")
    asker = await join(rooms_server, room, "participant", "ann")
    qid = (await asker.request({"t": "ask", "text": "pending?"}))["qid"]
    for staff in (mod, speaker):
        q = await staff.recv_until(lambda e: e["t"] == "q" and e["qid"] == qid)
        assert q["state"] == "pending"
    # Participants neither see it nor may act on it.
    assert (await part.request({"t": "vote", "qid": qid, "up": True}))["code"] == "not_found"
    late = await join(rooms_server, room, "participant", "late")
    assert late.welcome["questions"] == []
    late_staff = await join(rooms_server, room, "speaker", "spk2")
    assert [q["state"] for q in late_staff.welcome["questions"]] == ["pending"]
    # Approval: participants get the q event, staff a qstate.
    assert (await speaker.request({"t": "qstate", "qid": qid, "state": "open"}))["t"] == "ok"
    q = await part.recv_until(lambda e: e.get("qid") == qid)
    assert q["t"] == "q" and q["state"] == "open" and q["text"] == "pending?"
    st = await mod.recv_until(lambda e: e["t"] == "qstate" and e["qid"] == qid)
    assert st["state"] == "open"
    assert (await part.request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    for c in (mod, part, speaker, asker, late, late_staff):
        await c.close()


async def test_only_one_question_is_on_stage(rooms_server: LivehubProcess,
                                            fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "spk")
    part = await join(rooms_server, room, "participant", "ann")
    q1 = (await part.request({"t": "ask", "text": "one"}))["qid"]
    q2 = (await part.request({"t": "ask", "text": "two"}))["qid"]
    assert (await speaker.request({"t": "qstate", "qid": q1, "state": "answering"}))["t"] == "ok"
    await part.recv_until(lambda e: e["t"] == "qstate" and e["qid"] == q1)
    assert (await speaker.request({"t": "qstate", "qid": q2, "state": "answering"}))["t"] == "ok"
    first = await part.recv_until(lambda e: e["t"] == "qstate")
    second = await part.recv_until(lambda e: e["t"] == "qstate")
    assert (first["qid"], first["state"]) == (q1, "answered")
    assert (second["qid"], second["state"]) == (q2, "answering")
    assert second["seq"] == first["seq"] + 1
    late = await join(rooms_server, room, "participant", "late")
    states = {q["qid"]: q["state"] for q in late.welcome["questions"]}
    assert states == {q2: "answering"}  # answered ones leave the live list
    # Marking the one on stage answered leaves the stage empty.
    assert (await speaker.request({"t": "qstate", "qid": q2, "state": "answered"}))["t"] == "ok"
    await part.recv_until(lambda e: e["t"] == "qstate" and e["qid"] == q2)
    for c in (speaker, part, late):
        await c.close()


async def test_answers_by_staff_reach_the_room(rooms_server: LivehubProcess,
                                              fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "spk")
    mod = await join(rooms_server, room, "moderator", "mod")
    part = await join(rooms_server, room, "participant", "ann")
    qid = (await part.request({"t": "ask", "text": "budget?"}))["qid"]
    assert (await part.request({"t": "answer", "qid": qid, "text": "me"}))["code"] == "forbidden"
    for who, text in ((speaker, "We will publish it."), (mod, "Link in the chat.")):
        assert (await who.request({"t": "answer", "qid": qid, "text": text}))["t"] == "ok"
        ans = await part.recv_until(lambda e: e["t"] == "answer")
        assert ans["qid"] == qid and ans["text"] == text
    late = await join(rooms_server, room, "participant", "late")
    (q,) = late.welcome["questions"]
    assert [a["text"] for a in q["answers"]] == ["We will publish it.", "Link in the chat."]
    assert (await speaker.request({"t": "answer", "qid": "nope", "text": "x"}))["code"] == \
        "not_found"
    for c in (speaker, mod, part, late):
        await c.close()


async def test_removed_questions_disappear(rooms_server: LivehubProcess,
                                          fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    mod = await join(rooms_server, room, "moderator", "mod")
    part = await join(rooms_server, room, "participant", "ann")
    qid = (await part.request({"t": "ask", "text": "spam"}))["qid"]
    assert (await mod.request({"t": "del", "qid": qid}))["t"] == "ok"
    ev = await part.recv_until(lambda e: e["t"] == "del")
    assert ev["qid"] == qid
    assert (await part.request({"t": "vote", "qid": qid, "up": True}))["code"] == "not_found"
    late = await join(rooms_server, room, "participant", "late")
    assert late.welcome["questions"] == []
    for c in (mod, part, late):
        await c.close()


async def test_vote_events_are_coalesced_with_an_exact_final_count(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    """N vote changes to one question within the window reach a client as at most N/2
    ``votes`` events (at least one), the last carrying the exact count."""
    room = fresh_room()
    watcher = await join(rooms_server, room, "participant", "watch")
    asker = await join(rooms_server, room, "participant", "ann")
    voters = [await join(rooms_server, room, "participant", f"v{i}") for i in range(12)]
    qid = (await asker.request({"t": "ask", "text": "popular?"}))["qid"]
    await watcher.recv_until(lambda e: e["t"] == "q")
    changes = 0
    for v in voters:  # 12 up, then 4 withdrawn: 16 changes, final count 8
        await v.send({"t": "vote", "qid": qid, "up": True, "id": "v"})
        changes += 1
    for v in voters[:4]:
        await v.send({"t": "vote", "qid": qid, "up": False, "id": "w"})
        changes += 1
    events = []
    while not events or events[-1]["votes"] != 8:
        events.append(await watcher.recv_until(lambda e: e["t"] == "votes", timeout=5))
    await asyncio.sleep(0.5)  # nothing else may follow
    events += [e for e in watcher.drain() if e["t"] == "votes"]
    assert 1 <= len(events) <= changes // 2, events
    assert events[-1]["votes"] == 8 and events[-1]["qid"] == qid
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    for c in (watcher, asker, *voters):
        await c.close()
