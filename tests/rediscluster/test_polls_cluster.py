"""Polls on a real Redis Cluster: ballots through two processes count exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.cluster.conftest import Cluster, Member, close_all, join_all
from tests.cluster.test_polls_everywhere import last_counts
from tests.rediscluster.test_servers import (  # noqa: F401 (fixtures used by name)
    Rooms,
    namespace,
    programme,
    rooms,
    servers,
)

pytestmark = pytest.mark.timeout(90)


async def test_ballots_through_two_processes_count_exactly_on_a_cluster(
        servers: Callable[..., Cluster], rooms: Rooms) -> None:  # noqa: F811 (fixtures)
    cl = servers()
    p1, p2 = cl.procs
    room = rooms.on()
    speaker = Member(room, "speaker", "speaker")
    await speaker.join(p1)
    pid = (await speaker.request({"t": "poll", "question": "Which?",
                                  "options": ["A", "B"]}))["pid"]
    voters = [Member(room, f"voter{i}") for i in range(10)]
    await join_all(voters, [p1, p2])
    answers = await asyncio.gather(*(v.request({"t": "ballot", "pid": pid, "choices": [i % 2]})
                                     for i, v in enumerate(voters)))
    assert all(a["t"] == "ok" for a in answers), answers
    everyone = [speaker, *voters]
    await asyncio.gather(*(m.pump(lambda m=m: last_counts(m, pid) == [5, 5], 10, "5 and 5")
                           for m in everyone))
    for proc in (p1, p2):
        late = Member(room, f"late-{proc.port}")
        welcome = await late.join(proc)
        assert [(p["pid"], p["counts"]) for p in welcome["polls"]] == [(pid, [5, 5])]
        await late.close()
    await close_all(everyone)
