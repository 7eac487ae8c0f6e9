"""Polls through a real server: PROTOCOL.md "Polls", every rule."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import Client, LivehubProcess, token


async def join(server: LivehubProcess, room: str, role: str, sub: str, **hello: Any) -> Client:
    return await Client.join(server.ws_url, room, token=token(role, sub.title(), sub=sub),
                             **hello)


async def open_poll(c: Client, options: list[str] | None = None, multi: bool = False,
                    question: str = "Which day suits?") -> dict[str, Any]:
    ok = await c.request({"t": "poll", "question": question,
                          "options": options or ["Monday", "Tuesday", "Wednesday"],
                          "multi": multi})
    assert ok["t"] == "ok", ok
    return ok


async def test_speaker_opens_a_poll_everyone_sees_it(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    ann = await join(rooms_server, room, "participant", "ann")
    ok = await open_poll(speaker)
    assert isinstance(ok["pid"], str) and ok["pid"] and isinstance(ok["seq"], int)
    ev = await ann.recv_until(lambda e: e["t"] == "poll")
    assert ev == {"t": "poll", "pid": ok["pid"], "question": "Which day suits?",
                  "options": ["Monday", "Tuesday", "Wednesday"], "multi": False,
                  "state": "open", "counts": [0, 0, 0], "seq": ok["seq"], "ts": ev["ts"]}
    moderator = await join(rooms_server, room, "moderator", "mo")
    ok2 = await moderator.request({"t": "poll", "question": "Q", "options": ["a", "b"]})
    assert ok2["t"] == "ok"
    for c in (speaker, ann, moderator):
        await c.close()


async def test_only_speakers_and_moderators_open_and_close_polls(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    ann = await join(rooms_server, room, "participant", "ann")
    err = await ann.request({"t": "poll", "question": "Mine?", "options": ["a", "b"]})
    assert err["t"] == "error" and err["code"] == "forbidden"
    pid = (await open_poll(speaker))["pid"]
    err = await ann.request({"t": "pollstate", "pid": pid, "state": "closed"})
    assert err["t"] == "error" and err["code"] == "forbidden"
    assert (await speaker.request({"t": "pollstate", "pid": pid, "state": "closed"}))["t"] == "ok"
    ev = await ann.recv_until(lambda e: e["t"] == "pollstate")
    assert ev["pid"] == pid and ev["state"] == "closed" and "by" not in ev
    err = await speaker.request({"t": "pollstate", "pid": "nope", "state": "closed"})
    assert err["code"] == "not_found"
    for c in (speaker, ann):
        await c.close()


@pytest.mark.parametrize(("frame", "code"), [
    ({"question": "Q", "options": ["only one"]}, "bad_frame"),
    ({"question": "Q", "options": [str(i) for i in range(11)]}, "bad_frame"),
    ({"question": "Q", "options": []}, "bad_frame"),
    ({"question": "Q", "options": ["a", ""]}, "bad_frame"),
    ({"question": "", "options": ["a", "b"]}, "bad_frame"),
    ({"question": "Q", "options": ["a", 2]}, "bad_frame"),
    ({"question": "Q", "options": ["a", "b"], "multi": "yes"}, "bad_frame"),
    ({"question": "Q" * 301, "options": ["a", "b"]}, "too_long"),
    ({"question": "Q", "options": ["a", "b" * 101]}, "too_long"),
])
async def test_bad_polls_are_refused(rooms_server: LivehubProcess,
                                     fresh_room: Callable[[], str],
                                     frame: dict[str, Any], code: str) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    err = await speaker.request({"t": "poll", **frame})
    assert err["t"] == "error" and err["code"] == code, err
    # Nothing was published, and the limits themselves are accepted.
    ok = await speaker.request({"t": "poll", "question": "Q" * 300,
                                "options": ["o" * 100] + [str(i) for i in range(9)]})
    assert ok["t"] == "ok" and ok["seq"] == speaker.welcome["seq"] + 1
    await speaker.close()


async def test_ballots_count_once_and_replace_the_last(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    ann = await join(rooms_server, room, "participant", "ann")
    bob = await join(rooms_server, room, "participant", "bob")
    pid = (await open_poll(speaker))["pid"]
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [0]}))["t"] == "ok"
    assert (await bob.request({"t": "ballot", "pid": pid, "choices": [0]}))["t"] == "ok"
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [0]}))["t"] == "ok"
    await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [2, 0, 0])
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [2]}))["t"] == "ok"
    tally = await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [1, 0, 1])
    assert set(tally) == {"t", "pid", "counts", "seq", "ts"}  # nobody's ballot is shown
    late = await join(rooms_server, room, "participant", "late")
    assert late.welcome["polls"] == [{
        "t": "poll", "pid": pid, "question": "Which day suits?",
        "options": ["Monday", "Tuesday", "Wednesday"], "multi": False, "state": "open",
        "counts": [1, 0, 1], "seq": late.welcome["polls"][0]["seq"],
        "ts": late.welcome["polls"][0]["ts"]}]
    for c in (speaker, ann, bob, late):
        await c.close()


@pytest.mark.parametrize(("choices", "multi"), [
    ([], False), ([3], False), ([-1], False), ([0, 1], False), ([0, 0], True),
    ([10], True), ("0", False), ([True], False), (None, False),
])
async def test_bad_ballots_get_bad_frame(rooms_server: LivehubProcess,
                                         fresh_room: Callable[[], str],
                                         choices: Any, multi: bool) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    pid = (await open_poll(speaker, multi=multi))["pid"]
    err = await speaker.request({"t": "ballot", "pid": pid, "choices": choices})
    assert err["t"] == "error" and err["code"] == "bad_frame", err
    err = await speaker.request({"t": "ballot", "pid": "no-such-poll", "choices": [0]})
    assert err["code"] == "not_found"
    await speaker.close()


async def test_multi_polls_take_several_choices(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    ann = await join(rooms_server, room, "participant", "ann")
    pid = (await open_poll(speaker, multi=True))["pid"]
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [2, 0]}))["t"] == "ok"
    await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [1, 0, 1])
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [0, 1, 0])
    for c in (speaker, ann):
        await c.close()


async def test_closed_polls_refuse_ballots_until_reopened(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    ann = await join(rooms_server, room, "participant", "ann")
    pid = (await open_poll(speaker))["pid"]
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    assert (await speaker.request({"t": "pollstate", "pid": pid, "state": "closed"}))["t"] == "ok"
    err = await ann.request({"t": "ballot", "pid": pid, "choices": [0]})
    assert err["t"] == "error" and err["code"] == "poll_closed"
    late = await join(rooms_server, room, "participant", "late")
    assert [(p["state"], p["counts"]) for p in late.welcome["polls"]] == [("closed", [0, 1, 0])]
    assert (await speaker.request({"t": "pollstate", "pid": pid, "state": "open"}))["t"] == "ok"
    await ann.recv_until(lambda e: e["t"] == "pollstate" and e["state"] == "open")
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [0]}))["t"] == "ok"
    await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [1, 0, 0])
    for c in (speaker, ann, late):
        await c.close()


async def test_muted_people_may_vote_banned_people_may_not(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    mod = await join(rooms_server, room, "moderator", "mo")
    ann = await join(rooms_server, room, "participant", "ann")
    pid = (await open_poll(mod))["pid"]
    assert (await mod.request({"t": "mute", "uid": "ann"}))["t"] == "ok"
    assert (await ann.request({"t": "post", "text": "hi"}))["code"] == "muted"
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    assert (await mod.request({"t": "ban", "uid": "ann"}))["t"] == "ok"
    closed = await ann.expect_close()
    assert closed.code == 4403
    for c in (mod,):
        await c.close()


async def test_resume_folds_ballots_into_one_exact_tally(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    pid = (await open_poll(speaker))["pid"]
    since, epoch = speaker.welcome["seq"], speaker.welcome["epoch"]
    voters = [await join(rooms_server, room, "participant", f"v{i}") for i in range(4)]
    for i, v in enumerate(voters):
        assert (await v.request({"t": "ballot", "pid": pid, "choices": [i % 2]}))["t"] == "ok"
    back = await join(rooms_server, room, "participant", "back", since=since, epoch=epoch)
    assert back.welcome["recovered"] is True
    kinds = [e["t"] for e in back.welcome["history"]]
    assert kinds == ["poll", "tally"]
    assert back.welcome["history"][1]["counts"] == [2, 2, 0]
    for c in (speaker, back, *voters):
        await c.close()


async def test_tallies_are_coalesced_and_the_last_is_exact(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    watcher = await join(rooms_server, room, "participant", "w")
    pid = (await open_poll(speaker))["pid"]
    voters = [await join(rooms_server, room, "participant", f"v{i}") for i in range(10)]
    watcher.drain()
    await asyncio.gather(*(v.send({"t": "ballot", "pid": pid, "choices": [0], "id": "b"})
                           for v in voters))
    tallies: list[dict[str, Any]] = []
    while not tallies or tallies[-1]["counts"][0] < 10:
        tallies.append(await watcher.recv_until(lambda e: e["t"] == "tally"))
    await asyncio.sleep(1.2)
    tallies += [e for e in watcher.drain() if e["t"] == "tally"]
    assert 1 <= len(tallies) <= 5, tallies  # 10 changes within a second: at most 10/2
    assert tallies[-1]["counts"] == [10, 0, 0]
    for c in (speaker, watcher, *voters):
        await c.close()


async def test_transcripts_list_polls_and_never_who_voted(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    mod = await join(rooms_server, room, "moderator", "mo")
    ann = await join(rooms_server, room, "participant", "ann")
    pid = (await open_poll(mod, options=["Yes", "No"], question="Extend the *trial*?"))["pid"]
    assert (await ann.request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    assert (await mod.request({"t": "pollstate", "pid": pid, "state": "closed"}))["t"] == "ok"
    headers = {"Authorization": f"Bearer {token('moderator', 'Mo', sub='mo')}"}
    async with httpx.AsyncClient(base_url=rooms_server.url, headers=headers) as http:
        md = (await http.get(f"/api/rooms/{room}/transcript", params={"format": "md"})).text
        js = (await http.get(f"/api/rooms/{room}/transcript",
                             params={"format": "json"})).json()
        csv = (await http.get(f"/api/rooms/{room}/transcript", params={"format": "csv"})).text
    assert "## Polls" in md and "“Extend the \\*trial\\*?”" in md
    assert "- Yes: 0 votes" in md and "- No: 1 vote" in md and "closed" in md
    ballots = [e for e in js["events"] if e["t"] == "ballot"]
    assert ballots and all("uid" not in e for e in ballots)
    assert ballots[0]["voter"] == 1
    assert "ann" not in [row.split(",")[3] for row in csv.splitlines() if ",ballot," in row]
    for c in (mod, ann):
        await c.close()


async def test_votes_and_tallies_flushed_together_keep_seq_rising(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await join(rooms_server, room, "speaker", "jo")
    reader = await join(rooms_server, room, "participant", "reader")
    pid = (await open_poll(speaker))["pid"]
    qid = (await speaker.request({"t": "ask", "text": "Q?"}))["qid"]
    people = [await join(rooms_server, room, "participant", f"p{i}") for i in range(6)]
    reader.drain()
    for i, p in enumerate(people):  # vote, ballot, vote, ballot... within one window
        frame = ({"t": "vote", "qid": qid, "up": True} if i % 2 == 0
                 else {"t": "ballot", "pid": pid, "choices": [1]})
        assert (await p.request(frame))["t"] == "ok"
    marker = await speaker.request({"t": "post", "text": "after the burst"})
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1].get("seq") != marker["seq"]:
        ev = await reader.recv()
        if "seq" in ev:
            seen.append(ev)
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seen
    assert [e["votes"] for e in seen if e["t"] == "votes"][-1] == 3
    assert [e["counts"] for e in seen if e["t"] == "tally"][-1] == [0, 3, 0]
    for c in (speaker, reader, *people):
        await c.close()
