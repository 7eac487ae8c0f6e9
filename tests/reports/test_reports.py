"""Reports through real servers: one process, and two over Redis (PROTOCOL.md, "Reports")."""

from __future__ import annotations

import asyncio

import pytest

from tests.reports.conftest import Net
from tests.reports.helpers import sentinel, seq_events, types

pytestmark = pytest.mark.timeout(60)


async def test_a_report_reaches_moderators_only(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    reporter = await net.join(1, room, sub="reporter")
    speaker = await net.join(0, room, "speaker", sub="speaker")
    moderator = await net.join(1, room, "moderator", sub="mod")
    mid = (await author.request({"t": "post", "text": "a nasty post"}))["mid"]
    for c in (reporter, speaker, moderator):
        await c.recv_until(lambda e: e.get("mid") == mid)
    ok = await reporter.request({"t": "report", "mid": mid, "reason": "abuse",
                                 "note": "names someone"})
    assert ok["t"] == "ok" and ok["rid"] and "seq" not in ok, ok
    ev = await moderator.recv_until(lambda e: e["t"] == "report")
    assert {k: ev[k] for k in ("rid", "mid", "reason", "note", "uid", "name", "count")} == {
        "rid": ok["rid"], "mid": mid, "reason": "abuse", "note": "names someone",
        "uid": "reporter", "name": "The reporter", "count": 1}
    assert "qid" not in ev and isinstance(ev["seq"], int) and isinstance(ev["ts"], int)
    # Nobody else hears of it; their streams skip its seq and stay complete.
    seen = await sentinel(moderator, author, reporter, speaker, moderator)
    for got in seen[:3]:
        assert "report" not in types(got), got
        seqs = [e["seq"] for e in seq_events(got)]
        assert ev["seq"] not in seqs and seqs[-1] > ev["seq"]
    # A resume from before the report replays everything but it, to all but moderators.
    since = ev["seq"] - 1
    late = await net.join(0, room, sub="author", since=since)
    assert late.welcome["recovered"] is True
    assert "report" not in types(late.welcome["history"])
    assert "reports" not in late.welcome
    late_mod = await net.join(0, room, "moderator", sub="mod2", since=since)
    assert "report" in types(late_mod.welcome["history"])
    assert [r["rid"] for r in late_mod.welcome["reports"]] == [ok["rid"]]
    for c in (author, reporter, speaker, moderator, late, late_mod):
        await c.close()


async def test_one_report_per_person_per_item(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    r1 = await net.join(1, room, sub="r1")
    r2 = await net.join(0, room, sub="r2")
    moderator = await net.join(1, room, "moderator", sub="mod")
    mid = (await author.request({"t": "post", "text": "spammy"}))["mid"]
    qid = (await author.request({"t": "ask", "text": "spammy?"}))["qid"]
    await r1.recv_until(lambda e: e.get("qid") == qid)
    first = await r1.request({"t": "report", "mid": mid, "reason": "spam"})
    again = await r1.request({"t": "report", "mid": mid, "reason": "abuse", "note": "x"})
    assert again == {**first, "id": again["id"]}
    other = await r2.request({"t": "report", "mid": mid, "reason": "off_topic"})
    on_q = await r1.request({"t": "report", "qid": qid, "reason": "other"})
    assert len({first["rid"], other["rid"], on_q["rid"]}) == 3
    got = (await sentinel(author, moderator))[0]
    reports = [e for e in got if e["t"] == "report"]
    assert [(e["rid"], e["count"]) for e in reports] == [
        (first["rid"], 1), (other["rid"], 2), (on_q["rid"], 1)]
    assert reports[2]["qid"] == qid and "mid" not in reports[2]
    # Also after it was resolved: the first rid, nothing published.
    assert (await moderator.request({"t": "resolve", "rid": first["rid"]}))["t"] == "ok"
    after = await r1.request({"t": "report", "mid": mid, "reason": "spam"})
    assert after["rid"] == first["rid"]
    got = (await sentinel(author, moderator))[0]
    assert types(got).count("resolved") == 1 and "report" not in types(got)
    # The welcome's open reports: newest first, each with its item's current count.
    fresh = await net.join(0, room, "moderator", sub="mod3")
    assert [(r["rid"], r["count"]) for r in fresh.welcome["reports"]] == [
        (on_q["rid"], 1), (other["rid"], 2)]
    for c in (author, r1, r2, moderator, fresh):
        await c.close()


async def test_simultaneous_repeats_through_every_process_publish_one_report(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    moderator = await net.join(1, room, "moderator", sub="mod")
    mine = [await net.join(i, room, sub="twice") for i in range(2)]
    mid = (await author.request({"t": "post", "text": "reported twice at once"}))["mid"]
    for c in mine:
        await c.recv_until(lambda e: e.get("mid") == mid)
    answers = await asyncio.gather(*(c.request({"t": "report", "mid": mid, "reason": "spam"})
                                     for c in mine))
    assert answers[0]["rid"] == answers[1]["rid"]
    got = (await sentinel(author, moderator))[0]
    assert [e["count"] for e in got if e["t"] == "report"] == [1]
    for c in (author, moderator, *mine):
        await c.close()


@pytest.mark.parametrize(("frame", "code"), [
    ({"reason": "rude"}, "bad_frame"),
    ({"reason": 3}, "bad_frame"),
    ({}, "bad_frame"),
    ({"note": 5}, "bad_frame"),
    ({"note": "x" * 301}, "too_long"),
    ({"both": True}, "bad_frame"),
    ({"neither": True}, "bad_frame"),
    ({"mid": "nope"}, "not_found"),
    ({"qid": "nope"}, "not_found"),
])
async def test_bad_reports(net: Net, frame: dict[str, object], code: str) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    qid = (await author.request({"t": "ask", "text": "y?"}))["qid"]
    req: dict[str, object] = {"t": "report", "mid": mid, "reason": "spam"}
    if frame.pop("both", False):
        req["qid"] = qid
    if frame.pop("neither", False):
        del req["mid"]
    if "qid" in frame:
        del req["mid"]
    if frame == {}:
        del req["reason"]
    req.update(frame)
    reporter = await net.join(1, room, sub="reporter")
    answer = await reporter.request(req)
    assert answer["t"] == "error" and answer["code"] == code, answer
    assert (await reporter.request({"t": "ping"}))["t"] == "ok"  # still open
    await author.close()
    await reporter.close()


async def test_what_may_be_reported_and_by_whom(net: Net) -> None:
    room = net.room()
    moderator = await net.join(0, room, "moderator", sub="mod")
    author = await net.join(1, room, sub="author")
    reporter = await net.join(0, room, sub="reporter")
    guest = await net.join(1, room, name="Visitor")
    # A note of 300 characters is fine; a muted person may report; so may a guest.
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    await reporter.recv_until(lambda e: e.get("mid") == mid)
    assert (await moderator.request({"t": "mute", "uid": "reporter"}))["t"] == "ok"
    ok = await reporter.request({"t": "report", "mid": mid, "reason": "other",
                                 "note": "n" * 300})
    assert ok["t"] == "ok", ok
    assert (await guest.request({"t": "report", "mid": mid, "reason": "spam"}))["t"] == "ok"
    # Someone else's pending question: not_found for a participant (not for its asker).
    assert (await moderator.request({"t": "settings", "premoderate": True}))["t"] == "ok"
    qid = (await author.request({"t": "ask", "text": "pending?"}))["qid"]
    await moderator.recv_until(lambda e: e.get("qid") == qid)
    refused = await reporter.request({"t": "report", "qid": qid, "reason": "spam"})
    assert refused["code"] == "not_found"
    assert (await author.request({"t": "report", "qid": qid, "reason": "other"}))["t"] == "ok"
    # A deleted post: not_found. A closed room still takes reports.
    mid2 = (await author.request({"t": "post", "text": "gone soon"}))["mid"]
    await reporter.recv_until(lambda e: e.get("mid") == mid2)
    assert (await author.request({"t": "del", "mid": mid2}))["t"] == "ok"
    await reporter.recv_until(lambda e: e["t"] == "del")
    assert (await reporter.request({"t": "report", "mid": mid2, "reason": "spam"}))[
        "code"] == "not_found"
    assert (await moderator.request({"t": "settings", "state": "closed"}))["t"] == "ok"
    await author.recv_until(lambda e: e["t"] == "room")
    assert (await author.request({"t": "report", "mid": mid, "reason": "spam"}))["t"] == "ok"
    # Guests, where the room no longer admits guests: forbidden.
    assert (await moderator.request({"t": "settings", "guests": False}))["t"] == "ok"
    await guest.recv_until(lambda e: e["t"] == "room" and not e["settings"]["guests"])
    qid2 = (await moderator.request({"t": "ask", "text": "visible"}))["qid"]
    await guest.recv_until(lambda e: e.get("qid") == qid2)
    assert (await guest.request({"t": "report", "qid": qid2, "reason": "spam"}))[
        "code"] == "forbidden"
    for c in (moderator, author, reporter, guest):
        await c.close()


async def test_resolve(net: Net) -> None:
    room = net.room()
    moderator = await net.join(0, room, "moderator", sub="mod")
    other_mod = await net.join(1, room, "moderator", sub="mod2")
    author = await net.join(1, room, sub="author")
    speaker = await net.join(0, room, "speaker", sub="speaker")
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    await speaker.recv_until(lambda e: e.get("mid") == mid)
    rid = (await speaker.request({"t": "report", "mid": mid, "reason": "spam"}))["rid"]
    await other_mod.recv_until(lambda e: e["t"] == "report")
    assert (await moderator.request({"t": "resolve", "rid": "r-unknown"}))["code"] == "not_found"
    assert (await speaker.request({"t": "resolve", "rid": rid}))["code"] == "forbidden"
    ok = await moderator.request({"t": "resolve", "rid": rid})
    assert ok["t"] == "ok" and "seq" not in ok
    resolved = await other_mod.recv_until(lambda e: e["t"] == "resolved")
    assert resolved["rid"] == rid and isinstance(resolved["seq"], int)
    assert (await moderator.request({"t": "resolve", "rid": rid}))["t"] == "ok"
    got = await sentinel(moderator, other_mod, speaker, author)
    assert "resolved" not in types(got[0])  # the repeat published nothing
    assert "resolved" not in types(got[1]) and "resolved" not in types(got[2])
    late = await net.join(1, room, "moderator", sub="mod3")
    assert late.welcome["reports"] == []
    for c in (moderator, other_mod, author, speaker, late):
        await c.close()


async def test_del_resolves_the_items_open_reports(net: Net) -> None:
    room = net.room()
    moderator = await net.join(0, room, "moderator", sub="mod")
    author = await net.join(1, room, sub="author")
    watcher = await net.join(0, room, sub="watcher")
    reporters = [await net.join(i, room, sub=f"rep{i}") for i in range(3)]
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    for r in reporters:
        await r.recv_until(lambda e: e.get("mid") == mid)
    rids = [(await r.request({"t": "report", "mid": mid, "reason": "abuse"}))["rid"]
            for r in reporters]
    assert (await moderator.request({"t": "resolve", "rid": rids[0]}))["t"] == "ok"
    assert (await moderator.request({"t": "del", "mid": mid}))["t"] == "ok"
    got = await sentinel(moderator, moderator, watcher)
    mod_seen = [e for e in got[0] if e["t"] in ("del", "resolved")]
    assert [e["t"] for e in mod_seen] == ["resolved", "del", "resolved", "resolved"]
    assert {e["rid"] for e in mod_seen[2:]} == set(rids[1:])
    assert mod_seen[1]["seq"] < mod_seen[2]["seq"] < mod_seen[3]["seq"]
    assert [e["t"] for e in got[1] if e["t"] in ("del", "resolved", "report")] == ["del"]
    late = await net.join(1, room, "moderator", sub="mod2")
    assert late.welcome["reports"] == []
    for c in (moderator, author, watcher, *reporters, late):
        await c.close()


async def test_welcome_reports_are_bounded_newest_first(net: Net) -> None:
    room = net.room()
    author = await net.join(0, room, sub="author")
    reporter = await net.join(1, room, sub="reporter")
    mids = [(await author.request({"t": "post", "text": f"p{i}"}))["mid"] for i in range(205)]
    await reporter.recv_until(lambda e: e.get("mid") == mids[-1])
    rids = [(await reporter.request({"t": "report", "mid": m, "reason": "spam"}))["rid"]
            for m in mids]
    moderator = await net.join(0, room, "moderator", sub="mod")
    assert [r["rid"] for r in moderator.welcome["reports"]] == rids[::-1][:200]
    for c in (author, reporter, moderator):
        await c.close()


async def test_metrics_count_open_reports_and_held_posts(net: Net) -> None:
    import httpx

    room = net.room()
    author = await net.join(0, room, sub="author")
    reporter = await net.join(0, room, sub="reporter")
    mid = (await author.request({"t": "post", "text": "x"}))["mid"]
    await reporter.recv_until(lambda e: e.get("mid") == mid)
    assert (await reporter.request({"t": "report", "mid": mid, "reason": "spam"}))["t"] == "ok"
    assert (await author.request({"t": "post", "text": "gumphery"}))["held"] is True
    await sentinel(author, author)
    async with httpx.AsyncClient(base_url=net.proc(0).url, timeout=5) as http:
        text = (await http.get("/metrics")).text
    assert f'livehub_open_reports{{room="{room}"}} 1.0' in text
    assert f'livehub_held_posts{{room="{room}"}} 1.0' in text
    for c in (author, reporter):
        await c.close()
