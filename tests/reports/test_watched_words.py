"""Watched words through real servers: block, hold, release, rejection (PROTOCOL.md)."""

from __future__ import annotations

import pytest

from tests.reports.conftest import Net
from tests.reports.helpers import sentinel, types
from tests.support import Client

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("role", ["participant", "speaker", "moderator"])
async def test_block_refuses_whoever_sends_it(net: Net, role: str) -> None:
    room = net.room()
    sender = await net.join(0, room, role, sub="sender")
    watcher = await net.join(1, room, "moderator", sub="watcher")
    qid = (await watcher.request({"t": "ask", "text": "a fair question"}))["qid"]
    await sender.recv_until(lambda e: e.get("qid") == qid)
    frames = [{"t": "post", "text": "you KLONKWIT"},
              {"t": "post", "text": "\uff47\uff52\uff49\uff4d\uff42\uff4f\uff53 all"},
              {"t": "ask", "text": "klonk\u200dwit?"}]
    if role != "participant":
        frames.append({"t": "answer", "qid": qid, "text": "grimbo!"})
    for frame in frames:
        answer = await sender.request(frame)
        assert answer["t"] == "error" and answer["code"] == "blocked", (frame, answer)
        assert "klonkwit" not in answer["message"].lower()
        assert "grimbo" not in answer["message"].lower()
    # Not inside longer words; and the conference list applies, not another room's own.
    for text in ("klonkwits", "Scunklonkwitthorpe", "parsnipgate"):
        assert (await sender.request({"t": "post", "text": text}))["t"] == "ok"
    got = (await sentinel(watcher, watcher))[0]
    assert [e["text"] for e in got if e["t"] == "msg"] == [
        "klonkwits", "Scunklonkwitthorpe", "parsnipgate", "sentinel"]
    await sender.close()
    await watcher.close()


async def test_a_sessions_own_list_adds_to_the_conferences(net: Net) -> None:
    room = "own-lists"
    sender = await net.join(0, room, sub="sender")
    assert (await sender.request({"t": "post", "text": "parsnipgate!"}))["code"] == "blocked"
    assert (await sender.request({"t": "post", "text": "klonkwit"}))["code"] == "blocked"
    held = await sender.request({"t": "post", "text": "turnipgate"})
    assert held["t"] == "ok" and held["held"] is True
    await sender.close()


async def test_a_guest_named_on_the_block_list_is_turned_away(net: Net) -> None:
    room = net.room()
    client = await Client.connect(net.proc(0).ws_url, room)
    await client.send({"t": "hello", "name": "Klonkwit Jones", "id": "h1"})
    error = await client.recv()
    assert error["t"] == "error" and error["code"] == "blocked" and error["id"] == "h1"
    closed = await client.expect_close()
    assert closed.code == 1008
    again = await Client.join(net.proc(1).ws_url, room, name="Kind Jones")
    assert again.welcome["me"]["name"] == "Kind Jones"
    await again.close()


async def test_a_held_post_reaches_moderators_and_its_author_only(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    author_too = await net.join(1, room, sub="author")  # the same person, another tab
    other = await net.join(1, room, sub="other")
    speaker = await net.join(0, room, "speaker", sub="speaker")
    moderator = await net.join(1, room, "moderator", sub="mod")
    ok = await author.request({"t": "post", "text": "such vile, lies"})
    assert ok["t"] == "ok" and ok["held"] is True and isinstance(ok["seq"], int), ok
    mid = ok["mid"]
    for c in (author_too, moderator):
        ev = await c.recv_until(lambda e: e.get("mid") == mid)
        assert ev["t"] == "msg" and ev["held"] is True and ev["seq"] == ok["seq"]
    got = await sentinel(moderator, other, speaker)
    for seen in got:
        assert all(e.get("mid") != mid for e in seen), seen
    # Held posts cannot be reacted to, reported, pinned or replied to.
    for frame in ({"t": "react", "mid": mid, "emoji": "heart"},
                  {"t": "report", "mid": mid, "reason": "spam"},
                  {"t": "post", "text": "re", "reply_to": mid}):
        assert (await other.request(frame))["code"] == "not_found", frame
    assert (await speaker.request({"t": "pin", "mid": mid}))["code"] == "not_found"
    # In no one's history; in the replay of its author and moderators; in `held`.
    since = ok["seq"] - 1
    fresh = {
        "plain": await net.join(0, room, sub="other"),
        "other": await net.join(1, room, sub="other", since=since),
        "author": await net.join(0, room, sub="author", since=since),
        "author-plain": await net.join(1, room, sub="author"),
        "mod": await net.join(1, room, "moderator", sub="mod2", since=since),
        "mod-plain": await net.join(0, room, "moderator", sub="mod3"),
    }
    def mids(c: Client) -> list[str]:
        return [e["mid"] for e in c.welcome["history"] if e["t"] == "msg"]
    assert mid not in mids(fresh["plain"]) and mid not in mids(fresh["other"])
    assert mid not in mids(fresh["author-plain"]) and mid not in mids(fresh["mod-plain"])
    assert mid in mids(fresh["author"]) and mid in mids(fresh["mod"])
    assert [m["mid"] for m in fresh["mod-plain"].welcome["held"]] == [mid]
    assert fresh["mod-plain"].welcome["held"][0]["held"] is True
    assert "held" not in fresh["plain"].welcome and "held" not in fresh["author-plain"].welcome
    # Speakers and moderators are exempt from the hold list.
    for c in (speaker, moderator):
        answer = await c.request({"t": "post", "text": "gumphery"})
        assert answer["t"] == "ok" and "held" not in answer
    for c in (author, author_too, other, speaker, moderator, *fresh.values()):
        await c.close()


async def test_release_sends_the_post_to_everyone_once(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    other = await net.join(1, room, sub="other")
    moderator = await net.join(0, room, "moderator", sub="mod")
    held = await author.request({"t": "post", "text": "the gumphery of it"})
    mid = held["mid"]
    assert (await other.request({"t": "release", "mid": mid}))["code"] == "forbidden"
    ok = await moderator.request({"t": "release", "mid": mid})
    assert ok["t"] == "ok" and ok["mid"] == mid and ok["seq"] > held["seq"], ok
    for c in (author, other, moderator):
        ev = await c.recv_until(lambda e: e.get("mid") == mid and not e.get("held"))
        assert ev["t"] == "msg" and ev["seq"] == ok["seq"] and "held" not in ev
        assert ev["text"] == "the gumphery of it" and ev["uid"] == "author"
    got = await sentinel(moderator, other, author)
    assert all(e.get("mid") != mid for seen in got for e in seen)  # once
    assert (await moderator.request({"t": "release", "mid": mid}))["code"] == "not_found"
    assert (await moderator.request({"t": "release", "mid": "nope"}))["code"] == "not_found"
    late = await net.join(1, room, sub="late")
    assert mid in [e["mid"] for e in late.welcome["history"]]
    late_mod = await net.join(1, room, "moderator", sub="mod2")
    assert late_mod.welcome["held"] == []
    # Released, it is an ordinary post: reactions and reports work.
    assert (await late.request({"t": "react", "mid": mid, "emoji": "wow"}))["t"] == "ok"
    for c in (author, other, moderator, late, late_mod):
        await c.close()


@pytest.mark.parametrize("by", ["author", "moderator"])
async def test_rejecting_a_held_post_tells_its_author_and_moderators_only(
        net: Net, by: str) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    other = await net.join(1, room, sub="other")
    moderator = await net.join(1, room, "moderator", sub="mod")
    mid = (await author.request({"t": "post", "text": "gumphery"}))["mid"]
    await moderator.recv_until(lambda e: e.get("mid") == mid)
    remover = author if by == "author" else moderator
    ok = await remover.request({"t": "del", "mid": mid})
    assert ok["t"] == "ok", ok
    for c in (author, moderator):
        ev = await c.recv_until(lambda e: e["t"] == "del")
        assert ev["mid"] == mid
    got = await sentinel(moderator, other)
    assert "del" not in types(got[0])
    assert (await moderator.request({"t": "release", "mid": mid}))["code"] == "not_found"
    late_mod = await net.join(0, room, "moderator", sub="mod2")
    assert late_mod.welcome["held"] == []
    for c in (author, other, moderator, late_mod):
        await c.close()


async def test_a_held_question_waits_pending(net: Net) -> None:
    room = net.room()
    asker = await net.join(0, room, sub="asker")
    other = await net.join(1, room, sub="other")
    speaker = await net.join(1, room, "speaker", sub="speaker")
    ok = await asker.request({"t": "ask", "text": "is it vile lies?"})
    assert ok["t"] == "ok"
    q = await speaker.recv_until(lambda e: e.get("qid") == ok["qid"])
    assert q["t"] == "q" and q["state"] == "pending"
    got = await sentinel(speaker, other)
    assert all(e.get("qid") != ok["qid"] for e in got[0])
    assert (await speaker.request({"t": "qstate", "qid": ok["qid"], "state": "open"}))[
        "t"] == "ok"
    shown = await other.recv_until(lambda e: e.get("qid") == ok["qid"])
    assert shown["t"] == "q" and shown["state"] == "open"
    for c in (asker, other, speaker):
        await c.close()


async def test_a_retried_held_post_is_answered_held_again(net: Net) -> None:
    room = net.room()
    first = await net.join(0, room, sub="author")
    second = await net.join(1, room, sub="author")
    frame = {"t": "post", "text": "gumphery again", "id": "same-id"}
    ok = await first.request(frame)
    again = await second.request(frame)
    assert ok["held"] is True and again == ok, (ok, again)
    moderator = await net.join(0, room, "moderator", sub="mod")
    assert [m["mid"] for m in moderator.welcome["held"]] == [ok["mid"]]  # published once
    for c in (first, second, moderator):
        await c.close()


async def test_a_poll_on_the_block_list_is_refused(net: Net) -> None:
    room = net.room()
    speaker = await net.join(0, room, "speaker", sub="speaker")
    for frame in ({"question": "Klonkwit?", "options": ["yes", "no"]},
                  {"question": "Fair?", "options": ["yes", "grimbolt"]}):
        answer = await speaker.request({"t": "poll", **frame})
        assert answer["t"] == "error" and answer["code"] == "blocked", answer
    ok = await speaker.request({"t": "poll", "question": "Fair?", "options": ["yes", "no"]})
    assert ok["t"] == "ok", ok
    await speaker.close()


async def test_watchers_may_not_report_or_react(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    mid = (await author.request({"t": "post", "text": "watch this"}))["mid"]
    watcher = await Client.join(net.proc(1).ws_url, room, watch=True)
    await watcher.recv_until(lambda e: e.get("mid") == mid) if not any(
        m["mid"] == mid for m in watcher.welcome["history"]) else None
    for frame in ({"t": "report", "mid": mid, "reason": "spam"},
                  {"t": "react", "mid": mid, "emoji": "heart"}):
        assert (await watcher.request(frame))["code"] == "forbidden", frame
    for c in (author, watcher):
        await c.close()
