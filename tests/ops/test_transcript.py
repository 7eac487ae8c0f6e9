"""A scripted session in a real server, exported in all three formats over HTTP.

Room used here: lobby (nothing else in the ops tests writes to it).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.ops.helpers import bearer
from tests.support import Client, LivehubProcess, token

ROOM = "lobby"


async def ok(client: Client, frame: dict[str, Any]) -> dict[str, Any]:
    answer = await client.request(frame)
    assert answer["t"] == "ok", answer
    return answer


async def scripted_session(server: LivehubProcess) -> tuple[list[tuple[str, int]], str]:
    """Run the session; the (type, seq) of every event it caused, and the room's epoch."""
    mod = await Client.join(server.ws_url, ROOM, token=token("moderator", "Mo Derator",
                                                             sub="mod-1"))
    jo = await Client.join(server.ws_url, ROOM, token=token("speaker", "Cllr Jo", sub="jo-1"))
    ann = await Client.join(server.ws_url, ROOM, token=token("participant", "Ann", sub="ann-1"))
    bob = await Client.join(server.ws_url, ROOM, token=token("participant", "Bob", sub="bob-1"))
    assert mod.welcome["seq"] == 0, "the transcript room must start empty"
    events: list[tuple[str, int]] = []

    async def step(client: Client, frame: dict[str, Any], *types: str) -> dict[str, Any]:
        answer = await ok(client, frame)
        first = answer["seq"] - len(types) + 1
        events.extend((t, first + i) for i, t in enumerate(types))
        return answer

    hello = (await step(ann, {"t": "post", "text": "Good morning, everyone"}, "msg"))["mid"]
    await step(bob, {"t": "post", "text": "Morning Ann", "reply_to": hello}, "msg")
    rude = (await step(bob, {"t": "post", "text": "RUDE WORDS 123"}, "msg"))["mid"]
    bins = (await step(ann, {"t": "ask", "text": "When are the bins collected?"}, "q"))["qid"]
    parks = (await step(bob, {"t": "ask", "text": "Can we have more parks?"}, "q"))["qid"]
    pays = (await step(ann, {"t": "ask", "text": "Who pays for this?", "anonymous": True},
                       "q"))["qid"]
    for voter in (ann, bob, mod):
        await step(voter, {"t": "vote", "qid": parks, "up": True}, "vote")
    await step(bob, {"t": "vote", "qid": pays, "up": True}, "vote")
    await step(jo, {"t": "qstate", "qid": bins, "state": "answering"}, "qstate")
    await step(jo, {"t": "answer", "qid": bins, "text": "Every Tuesday morning."}, "answer")
    await step(jo, {"t": "qstate", "qid": bins, "state": "answered"}, "qstate")
    await step(mod, {"t": "pin", "mid": hello}, "pin")
    await step(mod, {"t": "mute", "uid": "bob-1", "seconds": 300}, "mute")
    await step(mod, {"t": "del", "mid": rude}, "del")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post(f"/api/rooms/{ROOM}/announce", json={"text": "We end at eleven"},
                            headers=bearer(name="Events Team", sub="org-1"))
        assert r.status_code == 201
        events.append(("msg", r.json()["seq"]))
    epoch = str(mod.welcome["epoch"])
    for client in (mod, jo, ann, bob):
        await client.close()
    return events, epoch


async def test_transcript_in_all_three_formats(ops: LivehubProcess) -> None:
    expected, epoch = await scripted_session(ops)
    assert [seq for _, seq in expected] == list(range(1, len(expected) + 1))
    got: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=ops.url, timeout=10) as http:
        for fmt in ("json", "csv", "md"):
            got[fmt] = await http.get(f"/api/rooms/{ROOM}/transcript", params={"format": fmt},
                                      headers=bearer())
            assert got[fmt].status_code == 200, got[fmt].text
        default = await http.get(f"/api/rooms/{ROOM}/transcript", headers=bearer())
    assert default.text == got["md"].text  # Markdown is the default

    # JSON: a header, and every event with its seq, in log order.
    r = got["json"]
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == 'attachment; filename="lobby-transcript.json"'
    doc = r.json()
    assert (doc["room"], doc["title"], doc["epoch"]) == (ROOM, "Lobby: open chat", epoch)
    assert doc["complete"] is True and doc["count"] == len(expected)
    assert [(ev["t"], ev["seq"]) for ev in doc["events"]] == expected
    by_type = {ev["t"]: ev for ev in doc["events"]}
    assert by_type["del"]["by"] == "mod-1" and by_type["del"]["of"] == "bob-1"
    assert by_type["mute"]["uid"] == "bob-1" and by_type["mute"]["until"] is not None
    assert doc["events"][1]["reply_to"] == doc["events"][0]["mid"]
    assert doc["events"][-1]["announcement"] is True

    # CSV: the same events, seq first, one row each; the complete record keeps removed text.
    r = got["csv"]
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="lobby-transcript.csv"'
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["seq", "ts", "type"]
    assert [(row[2], int(row[0])) for row in rows[1:]] == expected
    records = list(csv.DictReader(io.StringIO(r.text)))
    assert records[2]["text"] == "RUDE WORDS 123"
    assert records[1]["reply_to"] == records[0]["mid"]
    assert all(row["ts"].endswith("Z") for row in records)

    # Markdown: the minutes.
    r = got["md"]
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="lobby-transcript.md"'
    md = r.text
    assert md.startswith("# Lobby: open chat\n")
    assert "Monday 6 April 2009, 09:00 to 10:00 UTC" in md and "Cllr Test Speaker" in md
    assert "RUDE WORDS" not in md
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["## Questions", "## Pinned posts", "## Chat", "## Moderation"]
    questions, rest = md.split("## Questions")[1].split("## Pinned posts")
    pinned, rest = rest.split("## Chat")
    chat, moderation = rest.split("## Moderation")
    # On stage first; then by votes: parks (3), pays (1).
    positions = [questions.index(text) for text in (
        "When are the bins collected?", "Can we have more parks?", "Who pays for this?")]
    assert positions == sorted(positions)
    assert "Every Tuesday morning." in questions and "Cllr Jo (speaker)" in questions
    assert "3 votes" in questions and "taken on stage at" in questions
    pays_entry = questions[positions[2]:]
    assert "Asked anonymously" in pays_entry and "Ann" not in pays_entry
    # Ann asked anonymously in this session, so the minutes name her nowhere: her own
    # posts are "a participant" too (the text others wrote is theirs to keep).
    assert "a participant: Good morning, everyone" in pinned
    lines = [line for line in chat.splitlines() if line.startswith("- ")]
    assert len(lines) == 4
    assert lines[0].endswith("a participant: Good morning, everyone")
    assert "Bob, replying to a participant at " in lines[1]
    assert lines[1].endswith("Morning Ann")
    assert lines[2].endswith("[removed by a moderator]")
    assert lines[3].endswith("Announcement from Events Team (moderator): We end at eleven")
    acts = [line for line in moderation.splitlines() if line.startswith("- ")]
    assert len(acts) == 3
    # Ann asked anonymously, so the Moderation section never names her.
    assert "Mo Derator (mod-1) pinned a post by a participant" in acts[0]
    assert "ann-1" not in moderation and "Ann" not in moderation
    assert "Mo Derator (mod-1) muted Bob (bob-1) for 5 minutes" in acts[1]
    assert "Mo Derator (mod-1) removed a post by Bob (bob-1)" in acts[2]
