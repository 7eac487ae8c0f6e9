"""Reactions through real servers: one per person per emoji, coalesced counts (PROTOCOL.md)."""

from __future__ import annotations

import asyncio

import pytest

from tests.reports.conftest import Net
from tests.reports.helpers import sentinel

pytestmark = pytest.mark.timeout(60)


async def test_react_counts_once_per_person_per_emoji(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    fan = await net.join(1, room, sub="fan")
    fan_too = await net.join(0, room, sub="fan")  # the same person elsewhere
    mid = (await author.request({"t": "post", "text": "nice"}))["mid"]
    await fan.recv_until(lambda e: e.get("mid") == mid)
    await fan_too.recv_until(lambda e: e.get("mid") == mid)
    assert (await fan.request({"t": "react", "mid": mid, "emoji": "thumbs_up"}))["t"] == "ok"
    ev = await author.recv_until(lambda e: e["t"] == "reactions")
    assert ev["mid"] == mid and ev["counts"] == {"thumbs_up": 1} and isinstance(ev["seq"], int)
    # A repeat (any connection, any process) publishes nothing; nor does taking back none.
    assert (await fan_too.request({"t": "react", "mid": mid, "emoji": "thumbs_up",
                                   "on": True}))["t"] == "ok"
    assert (await fan.request({"t": "react", "mid": mid, "emoji": "heart",
                               "on": False}))["t"] == "ok"
    got = (await sentinel(fan, author))[0]
    assert [e for e in got if e["t"] == "reactions"] == []
    assert (await fan.request({"t": "react", "mid": mid, "emoji": "heart"}))["t"] == "ok"
    assert (await author.request({"t": "react", "mid": mid, "emoji": "heart"}))["t"] == "ok"
    ev = await fan.recv_until(lambda e: e["t"] == "reactions" and e["counts"].get("heart") == 2)
    assert ev["counts"] == {"thumbs_up": 1, "heart": 2}
    assert (await fan_too.request({"t": "react", "mid": mid, "emoji": "thumbs_up",
                                   "on": False}))["t"] == "ok"
    ev = await author.recv_until(lambda e: e["t"] == "reactions" and "thumbs_up" not in
                                 e["counts"])
    assert ev["counts"] == {"heart": 2}  # zeros left out
    # The welcome's history and pinned posts carry the exact counts.
    moderator = await net.join(1, room, "moderator", sub="mod")
    assert (await moderator.request({"t": "pin", "mid": mid}))["t"] == "ok"
    late = await net.join(0, room, sub="late")
    post = next(m for m in late.welcome["history"] if m["mid"] == mid)
    assert post["reactions"] == {"heart": 2}
    assert late.welcome["pinned"][0]["reactions"] == {"heart": 2}
    for c in (author, fan, fan_too, moderator, late):
        await c.close()


@pytest.mark.parametrize(("frame", "code"), [
    ({"emoji": "smile"}, "bad_frame"),
    ({"emoji": "heart", "on": "yes"}, "bad_frame"),
    ({"emoji": "heart", "mid": "nope"}, "not_found"),
])
async def test_bad_reactions(net: Net, frame: dict[str, object], code: str) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    other = await net.join(1, room, sub="other")
    answer = await other.request({"t": "react", "mid": mid, **frame})
    assert answer["t"] == "error" and answer["code"] == code, answer
    for c in (author, other):
        await c.close()


async def test_who_may_react(net: Net) -> None:
    room = net.room()
    moderator = await net.join(0, room, "moderator", sub="mod")
    author = await net.join(1, room, sub="author")
    guest = await net.join(0, room, name="Visitor")
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    await guest.recv_until(lambda e: e.get("mid") == mid)
    assert (await moderator.request({"t": "mute", "uid": "author"}))["t"] == "ok"
    await author.recv_until(lambda e: e["t"] == "mute")
    assert (await author.request({"t": "react", "mid": mid, "emoji": "clap"}))["t"] == "ok"
    assert (await guest.request({"t": "react", "mid": mid, "emoji": "clap"}))["t"] == "ok"
    assert (await moderator.request({"t": "settings", "guests": False}))["t"] == "ok"
    await guest.recv_until(lambda e: e["t"] == "room")
    assert (await guest.request({"t": "react", "mid": mid, "emoji": "wow"}))[
        "code"] == "forbidden"
    assert (await moderator.request({"t": "settings", "state": "closed"}))["t"] == "ok"
    await author.recv_until(lambda e: e["t"] == "room" and e["state"] == "closed")
    assert (await author.request({"t": "react", "mid": mid, "emoji": "wow"}))[
        "code"] == "room_closed"
    assert (await author.request({"t": "del", "mid": mid}))["t"] == "ok"
    await moderator.recv_until(lambda e: e["t"] == "del")
    assert (await moderator.request({"t": "react", "mid": mid, "emoji": "wow"}))[
        "code"] == "not_found"
    for c in (moderator, author, guest):
        await c.close()


async def test_a_burst_is_coalesced(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    observers = [await net.join(i, room, sub=f"obs{i}") for i in range(2)]
    fans = [await net.join(i, room, sub=f"fan{i}") for i in range(20)]
    mid = (await author.request({"t": "post", "text": "react to me"}))["mid"]
    for f in fans:
        await f.recv_until(lambda e: e.get("mid") == mid)
    answers = await asyncio.gather(*(f.request({"t": "react", "mid": mid, "emoji": "clap"})
                                     for f in fans))
    assert all(a["t"] == "ok" for a in answers)
    for obs in observers:
        events = []
        while not events or events[-1]["counts"].get("clap") != 20:
            ev = await obs.recv(5)
            if ev["t"] == "reactions":
                events.append(ev)
        await asyncio.sleep(0.5)
        events += [e for e in obs.drain() if e["t"] == "reactions"]
        # 20 changes within a second, nothing between them: at most 10 events, the last
        # one exact.
        assert 1 <= len(events) <= 10, events
        assert events[-1]["counts"] == {"clap": 20}
    for c in (author, *observers, *fans):
        await c.close()
