"""Two real server processes on one Redis: one room, one order, and resume across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.cluster.conftest import Cluster, Member, assert_same_gap_free_stream, close_all

pytestmark = pytest.mark.timeout(60)


async def test_posts_cross_processes_in_one_order(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    ok = await a.post("hello from process 1")
    await b.pump(lambda: bool(b.msgs()), 5, "ann's post")
    got = b.msgs()[0]
    assert got == {**got, "mid": ok["mid"], "seq": ok["seq"], "uid": "ann",
                   "text": "hello from process 1"}
    ok = await b.post("and back from process 2")
    await a.pump(lambda: len(a.msgs()) == 2, 5, "bob's post")
    assert a.msgs()[1]["mid"] == ok["mid"]

    # A burst: 4 people (2 per process) x 50 posts, all sent at once.
    burst = 50
    people = [Member(room, f"burst{i}") for i in range(4)]
    for i, m in enumerate(people):
        await m.join(cluster.procs[i % 2])
    start = people[0].seq
    assert all(m.seq == start for m in people)

    async def fire(m: Member) -> None:
        ids = [await m.send({"t": "post", "text": f"{m.sub} #{i}", "id": f"{m.sub}-{i}"})
               for i in range(burst)]
        await m.pump(lambda: all(i in m.answers for i in ids), 20, "every answer")

    await asyncio.gather(*(fire(m) for m in people))
    oks = [ans for m in people for ans in m.answers.values()]
    assert len(oks) == 4 * burst and all(ans["t"] == "ok" for ans in oks), oks[:3]
    last = max(ans["seq"] for ans in oks)
    assert last == start + 4 * burst
    everyone = [a, b, *people]
    await asyncio.gather(*(m.catch_up(last) for m in everyone))
    assert_same_gap_free_stream(everyone, start + 1, last)
    for m in everyone:
        mids = [ev["mid"] for ev in m.msgs() if ev["seq"] > start]
        assert len(mids) == len(set(mids)) == 4 * burst
        assert set(mids) == {ans["mid"] for ans in oks}
    # Each person's own posts are in the order they were sent.
    for m in people:
        mine = [ev["text"] for ev in people[0].msgs() if ev["uid"] == m.sub]
        assert mine == [f"{m.sub} #{i}" for i in range(burst)]
    await close_all(everyone)


async def test_resume_on_the_other_process(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    leaver, on1, on2 = Member(room, "leaver"), Member(room, "stay1"), Member(room, "stay2")
    await leaver.join(p1)
    await on1.join(p1)
    await on2.join(p2)
    for i in range(3):
        ok = await on1.post(f"before {i}")
    await leaver.catch_up(ok["seq"])
    since, epoch = leaver.seq, leaver.epoch
    assert since == 3
    await leaver.close()
    await asyncio.sleep(0.1)  # let process 1 see the close

    missed = [await on1.post("missed from process 1"), await on2.post("missed from process 2"),
              await on1.post("missed again from process 1")]

    welcome = await leaver.join(p2)  # the OTHER process, with since + epoch
    assert welcome["recovered"] is True and welcome["epoch"] == epoch
    replayed = welcome["history"]
    assert [ev["seq"] for ev in replayed] == list(range(since + 1, since + 4))
    assert [ev["mid"] for ev in replayed] == [m["mid"] for m in missed]
    assert welcome["seq"] == missed[-1]["seq"]
    # And it is live again on its new process.
    ok = await on1.post("after the resume")
    await leaver.pump(lambda: leaver.seq >= ok["seq"], 5, "the next post")
    assert leaver.msgs()[-1]["mid"] == ok["mid"]
    assert_same_gap_free_stream([leaver], since + 1, ok["seq"])
    await close_all([leaver, on1, on2])


def answered(m: Member, ids: list[str]) -> Callable[[], bool]:
    return lambda: all(r in m.answers for r in ids)


async def test_joining_during_a_burst_gets_its_welcome_first_and_nothing_twice(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    """People joining (fresh, or resuming with since) on one process while the other
    commits fast: the welcome is the first frame, and the stream after its seq has no
    event twice and none missing."""
    p1, p2 = cluster.procs
    room = fresh_room()
    poster = Member(room, "poster")
    await poster.join(p1)
    stop = asyncio.Event()

    async def post_fast() -> None:
        i = 0
        while not stop.is_set():
            ids = [await poster.send({"t": "post", "text": f"burst {i + k}"}) for k in range(5)]
            await poster.pump(answered(poster, ids), 10, "answers")
            i += 5

    posting = asyncio.create_task(post_fast())
    joiners = [Member(room, f"joiner{i}") for i in range(12)]
    try:
        for m in joiners:  # Client.join fails unless the first frame is the welcome
            await m.join(p2)
            await m.pump(lambda m=m: m.seq >= m.welcomes[-1]["seq"] + 3, 10, "a few events")
            await m.close()
            await m.join(p2 if m.sub.endswith(("0", "2", "4", "6", "8")) else p1)  # resume
            assert m.welcomes[-1]["recovered"] is True
    finally:
        stop.set()
        await asyncio.wait_for(posting, 10)
    last = max(a["seq"] for a in poster.answers.values())
    await asyncio.gather(*(m.catch_up(last) for m in joiners))
    for m in joiners:
        assert_same_gap_free_stream([m], m.welcomes[0]["seq"] + 1, last)
    await close_all([poster, *joiners])
