"""Polls across two processes over Redis: exact counts, the same state everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.cluster.conftest import (
    Cluster,
    Member,
    close_all,
    eventually_async,
    join_all,
    online_in,
)
from tests.support import Client, LivehubProcess

pytestmark = pytest.mark.timeout(60)


def last_counts(m: Member, pid: str) -> list[int] | None:
    counts = [ev["counts"] for ev in m.events if ev["t"] == "tally" and ev["pid"] == pid]
    return counts[-1] if counts else None


async def test_ballots_through_two_processes_count_exactly(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    speaker, watcher = Member(room, "speaker", "speaker"), Member(room, "watcher")
    await speaker.join(p1)
    await watcher.join(p2)
    pid = (await speaker.request({"t": "poll", "question": "Which option?",
                                  "options": ["A", "B", "C"]}))["pid"]
    voters = [Member(room, f"voter{i}") for i in range(24)]
    await join_all(voters, [p1, p2])  # 12 on each process
    everyone = [speaker, watcher, *voters]

    async def all_see(counts: list[int]) -> None:
        await asyncio.gather(*(m.pump(lambda m=m: last_counts(m, pid) == counts, 10,
                                      f"counts {counts}") for m in everyone))
        for proc in (p1, p2):
            late = Member(room, f"late-{proc.port}-{sum(counts)}-{counts[0]}")
            welcome = await late.join(proc)
            assert [(p["pid"], p["counts"]) for p in welcome["polls"]] == [(pid, counts)]
            await late.close()

    answers = await asyncio.gather(*(v.request({"t": "ballot", "pid": pid, "choices": [i % 3]})
                                     for i, v in enumerate(voters)))
    assert all(a["t"] == "ok" for a in answers), answers
    await all_see([8, 8, 8])
    # Everyone changes their mind at once, through both processes: replaced, not added.
    answers = await asyncio.gather(*(v.request({"t": "ballot", "pid": pid, "choices": [0]})
                                     for v in voters))
    assert all(a["t"] == "ok" for a in answers), answers
    await all_see([24, 0, 0])
    # Closed through one process, refused through the other.
    assert (await speaker.request({"t": "pollstate", "pid": pid, "state": "closed"}))["t"] == "ok"
    await watcher.pump(lambda: any(e["t"] == "pollstate" for e in watcher.events), 5)
    err = await voters[1].request({"t": "ballot", "pid": pid, "choices": [1]})  # on p2
    assert err["t"] == "error" and err["code"] == "poll_closed", err
    await close_all(everyone)


async def _online_is(proc: LivehubProcess, room: str, n: int) -> bool:
    return await online_in(proc, room) == n


async def test_watchers_are_not_counted_online_on_any_process(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    p1, p2 = cluster.procs
    room = fresh_room()
    ann = Member(room, "ann")
    await ann.join(p1)
    watchers = [await Client.join(p.ws_url, room, watch=True) for p in (p1, p2, p2)]
    bob = Member(room, "bob")
    welcome = await bob.join(p2)
    assert welcome["online"] == 2
    assert all(w.welcome["me"]["watch"] for w in watchers)
    for proc in (p1, p2):
        await eventually_async(lambda proc=proc: _online_is(proc, room, 2), 5,
                               f"online 2 on {proc.port}")
    for w in watchers:
        await w.close()
    await close_all([ann, bob])
