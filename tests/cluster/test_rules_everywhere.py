"""What one process decides holds on the other: moderation (issue 4) and votes (issue 5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Member, close_all, join_all
from tests.support import Client, Closed, LivehubProcess

pytestmark = pytest.mark.timeout(60)

BUDGET = 1.0  # seconds: "enforced by another process within a second"


async def enforced_within(m: Member, frame: dict[str, Any], want: str,
                          passing: tuple[str, ...] = ("ok",)) -> float:
    """Repeat ``frame`` until its answer is ``want`` (``ok`` or an error code); seconds taken.

    Answers in ``passing`` are what the other process may still say before it has
    applied the change; anything else fails, and so does taking longer than ``BUDGET``.
    """
    started = time.monotonic()
    while True:
        ans = await m.request(frame)
        got = ans["t"] if ans["t"] == "ok" else ans["code"]
        took = time.monotonic() - started
        if got == want:
            return took
        assert got in passing, ans
        assert took < BUDGET, f"{frame['t']}: still {got!r} after {took:.2f}s"
        await asyncio.sleep(0.01)


async def refused_join(proc: LivehubProcess, room: str, **hello: Any
                       ) -> tuple[dict[str, Any], Closed]:
    """A join the server turns away: its error frame and the close."""
    client = await Client.connect(proc.ws_url, room)
    await client.send({"t": "hello", **hello})
    first = await client.recv()
    closed = await client.expect_close()
    return first, closed


async def test_moderation_through_one_process_holds_on_the_other(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    mod = Member(room, "mod", "moderator")
    target, other = Member(room, "target"), Member(room, "other")
    await mod.join(p1)
    await target.join(p2)
    await other.join(p2)
    post = {"t": "post", "text": "may I?"}
    took: dict[str, float] = {}

    # mute through process 1: process 2 refuses the muted person's posts, and no one else's
    assert (await mod.request({"t": "mute", "uid": "target", "seconds": 60}))["t"] == "ok"
    took["mute"] = await enforced_within(target, post, "muted")
    assert (await other.post("not me"))["t"] == "ok"
    assert (await mod.request({"t": "unmute", "uid": "target"}))["t"] == "ok"
    took["unmute"] = await enforced_within(target, post, "ok", passing=("muted",))

    # settings through process 1
    closing = {"t": "settings", "state": "closed"}
    assert (await mod.request(closing))["t"] == "ok"
    took["closed"] = await enforced_within(other, post, "room_closed")
    assert (await mod.request({"t": "settings", "state": "open", "slow_mode": 30}))["t"] == "ok"
    took["slow_mode"] = await enforced_within(other, post, "slow_mode",
                                              passing=("ok", "room_closed"))
    assert (await mod.request({"t": "settings", "guests": False}))["t"] == "ok"
    started = time.monotonic()
    while True:
        client = await Client.connect(p2.ws_url, room)
        await client.send({"t": "hello", "name": "A guest"})
        first = await client.recv()
        if first["t"] == "error":
            assert first["code"] == "auth_failed"
            assert (await client.expect_close()).code == 4401
            break
        assert first["t"] == "welcome" and time.monotonic() - started < BUDGET
        await client.close()
        await asyncio.sleep(0.01)
    took["guests off"] = time.monotonic() - started

    # ban through process 1: the person's connection on process 2 closes 4403, and
    # neither process lets them back in
    started = time.monotonic()
    assert (await mod.request({"t": "ban", "uid": "target"}))["t"] == "ok"
    closed = await target.expect_close(BUDGET)
    took["ban"] = time.monotonic() - started
    assert closed.code == 4403
    for proc in (p2, p1):
        first, closed = await refused_join(proc, room, token=target.token)
        assert (first.get("code"), closed.code) == ("banned", 4403)
    print("\nenforced on the other process after: "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
    await close_all([mod, other])


def last_votes(m: Member, qid: str) -> int | None:
    counts = [ev["votes"] for ev in m.events if ev["t"] == "votes" and ev["qid"] == qid]
    return counts[-1] if counts else None


async def test_concurrent_votes_through_two_processes_sum_exactly(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    asker, watcher = Member(room, "asker"), Member(room, "watcher")
    await asker.join(p1)
    await watcher.join(p2)
    qid = (await asker.request({"t": "ask", "text": "Shall we extend the consultation?"}))["qid"]
    voters = [Member(room, f"voter{i}") for i in range(30)]
    await join_all(voters, [p1, p2])  # 15 on each process
    everyone = [asker, watcher, *voters]

    async def all_see(n: int) -> None:
        await asyncio.gather(*(m.pump(lambda m=m: last_votes(m, qid) == n, 10, f"{n} votes")
                               for m in everyone))
        for proc in (p1, p2):
            late = Member(room, f"late{n}-{proc.port}")
            welcome = await late.join(proc)
            assert [(q["qid"], q["votes"]) for q in welcome["questions"]] == [(qid, n)]
            await late.close()

    answers = await asyncio.gather(*(v.request({"t": "vote", "qid": qid, "up": True})
                                     for v in voters))
    assert all(a["t"] == "ok" for a in answers), answers
    await all_see(30)

    leaving = voters[:10]  # 5 on each process
    answers = await asyncio.gather(*(v.request({"t": "vote", "qid": qid, "up": False})
                                     for v in leaving))
    assert all(a["t"] == "ok" for a in answers), answers
    await all_see(20)
    # A double vote through the other process changes nothing.
    again = await asyncio.gather(*(v.request({"t": "vote", "qid": qid, "up": True})
                                   for v in voters[10:12]))
    assert all(a["t"] == "ok" for a in again)
    ok = await asker.post("marker")
    await asyncio.gather(*(m.catch_up(ok["seq"]) for m in everyone))
    assert all(last_votes(m, qid) == 20 for m in everyone)
    await close_all(everyone)
