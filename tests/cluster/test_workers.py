"""``livehub serve --redis URL --workers 2``: both workers serve, and share rooms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.cluster.conftest import Cluster, Member, close_all, eventually

pytestmark = pytest.mark.timeout(60)


async def test_two_workers_share_one_port_and_the_rooms(
        make_cluster: Callable[..., Cluster], fresh_room: Callable[[], str]) -> None:
    cl = make_cluster(n=1, args=["--workers", "2"])
    server = cl.procs[0]
    workers = set(cl.extra_pids)
    assert len(workers) >= 2, workers
    room = fresh_room()
    r = redis.Redis.from_url(cl.redis_url, socket_timeout=5)
    online_key = f"{cl.namespace}:{{{room}}}:online"

    def serving() -> dict[int, int]:
        """People per worker pid, from the per-process counts each worker keeps in Redis
        (field ``<host>-<pid>-<random>``)."""
        return {int(k.decode().rsplit("-", 2)[1]): int(v)
                for k, v in r.hgetall(online_key).items()}

    def started() -> set[int]:
        """Workers whose broker is up: each keeps a heartbeat key ``proc:<host>-<pid>-...``."""
        keys = r.scan_iter(match=f"{cl.namespace}:proc:*")
        return {int(k.decode().rsplit("-", 2)[1]) for k in keys} & workers

    await eventually(lambda: len(started()) == 2, 20, "both workers up", interval=0.05)
    members: list[Member] = []
    while len(members) < 20 or len(serving()) < 2:
        assert len(members) < 60, f"every connection went to one worker: {serving()}"
        m = Member(room, f"p{len(members)}")
        welcome = await m.join(server)
        assert welcome["online"] == len(members) + 1  # counted across both workers
        members.append(m)
    spread = serving()
    assert set(spread) <= workers and len(spread) == 2, (spread, workers)
    assert sum(spread.values()) == len(members)

    oks = await asyncio.gather(*(m.post(f"hello from {m.sub}") for m in members))
    assert all(ok["t"] == "ok" for ok in oks)
    last = max(ok["seq"] for ok in oks)
    assert last == len(members)
    await asyncio.gather(*(m.catch_up(last) for m in members))
    for m in members:
        assert sorted(ev["mid"] for ev in m.msgs()) == sorted(ok["mid"] for ok in oks)
        assert [ev["seq"] for ev in m.events] == list(range(1, last + 1))
    print(f"\n{len(members)} connections over 2 workers: {spread}")
    r.close()
    await close_all(members)
    # SIGTERM to the parent stops both workers (by pid; nothing left behind).
    server.terminate()
    await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10,
                     "the workers to exit")
