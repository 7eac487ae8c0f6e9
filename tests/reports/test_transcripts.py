"""Reports, held posts and reactions in transcripts: counted, never attributed."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.reports.conftest import Net
from tests.reports.helpers import sentinel
from tests.support import token

pytestmark = pytest.mark.timeout(60)


async def transcript(net: Net, room: str, fmt: str) -> str:
    headers = {"Authorization": f"Bearer {token('moderator', sub='staff')}"}
    async with httpx.AsyncClient(base_url=net.proc(0).url, timeout=10) as http:
        r = await http.get(f"/api/rooms/{room}/transcript", params={"format": fmt},
                           headers=headers)
    assert r.status_code == 200, r.text
    return r.text


async def test_transcripts_count_reports_and_reactions_without_names(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    moderator = await net.join(1, room, "moderator", sub="mod")
    fans = [await net.join(i, room, sub=f"secretfan{i}") for i in range(3)]
    mid = (await author.request({"t": "post", "text": "react and report"}))["mid"]
    for f in fans:
        await f.recv_until(lambda e: e.get("mid") == mid)
    for f in fans:
        assert (await f.request({"t": "react", "mid": mid, "emoji": "thumbs_up"}))["t"] == "ok"
    assert (await fans[0].request({"t": "react", "mid": mid, "emoji": "heart"}))["t"] == "ok"
    for f, reason in zip(fans[:2], ("abuse", "spam"), strict=True):
        ok = await f.request({"t": "report", "mid": mid, "reason": reason,
                              "note": "secret note"})
        assert ok["t"] == "ok"
    assert (await moderator.request({"t": "resolve", "rid": ok["rid"]}))["t"] == "ok"
    held = await author.request({"t": "post", "text": "gumphery held then released"})
    rejected = await author.request({"t": "post", "text": "gumphery rejected"})
    still = await author.request({"t": "post", "text": "gumphery still held"})
    assert held["held"] and rejected["held"] and still["held"]
    assert (await moderator.request({"t": "release", "mid": held["mid"]}))["t"] == "ok"
    assert (await moderator.request({"t": "del", "mid": rejected["mid"]}))["t"] == "ok"
    await sentinel(moderator, author)

    md = await transcript(net, room, "md")
    assert "[thumbs_up 3, heart 1]" in md
    assert "2 reports (abuse, spam) on a post: open (the post from " in md
    assert "secretfan" not in md and "secret note" not in md and "The secretfan" not in md
    chat = md.split("## Chat")[1].split("## Moderation")[0]
    assert "gumphery held then released" in chat
    assert "gumphery rejected" not in md and "gumphery still held" not in md
    assert chat.index("react and report") < chat.index("gumphery held then released")
    assert chat.count("[removed by a moderator]") == 1

    rows = list(csv.DictReader(io.StringIO(await transcript(net, room, "csv"))))
    reactions = [r for r in rows if r["type"] == "reactions"]
    assert len(reactions) == 4 and not any(r["uid"] or r["name"] for r in reactions)
    assert '"thumbs_up": 3' in reactions[2]["extra"]
    assert not [r for r in rows if r["type"] == "react"]
    assert [r["type"] for r in rows].count("report") == 2  # the staff record keeps them
    data = (await transcript(net, room, "json"))
    assert '"react"' not in data and "secretfan1" in data  # reporters stay, reactors go
    for c in (author, moderator, *fans):
        await c.close()
