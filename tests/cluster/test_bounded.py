"""Bounded cost on Redis, through two real server processes (issue 14).

Losing the pub/sub connection while Redis answers commands refuses nothing; replay
after a far `since` reads nothing from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.cluster.conftest import (
    Cluster,
    Member,
    assert_same_gap_free_stream,
    close_all,
    eventually,
    eventually_async,
    http_get,
    join_all,
    numsub,
)
from tests.cluster.test_redis_failures import Chatter
from tests.redis_server import RedisServer
from tests.support import LivehubProcess, token

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def pair(namespace: str, programme: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[RedisServer, Cluster]]:
    """A private redis-server (its pub/sub clients are killed) and two processes."""
    server = RedisServer().start()
    cl = Cluster(server.url, namespace, programme, tmp_path_factory.mktemp("bounded"),
                 env={"LIVEHUB_MAX_REPLAY": "100"})
    try:
        yield server, cl.start()
    finally:
        cl.stop()
        server.cleanup()


def admin(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


async def test_pubsub_killed_three_times_refuses_no_post(
        pair: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    server, cl = pair
    ns, room = cl.namespace, fresh_room()
    r = admin(server)
    members = [Member(room, f"m{i}") for i in range(4)]  # two on each process
    await join_all(members, cl.procs)
    assert numsub(r, ns, room) == 2
    chatter = Chatter(members).start()
    for _ in range(3):
        mark = len(chatter.acked_seqs(members))
        await eventually(lambda mark=mark: len(chatter.acked_seqs(members)) >= mark + 15,  # type: ignore[misc]
                         10, "posting")
        assert r.client_kill_filter(_type="pubsub") == 2
        # Commands still work: both processes stay ready while they resubscribe.
        for proc in cl.procs:
            assert (await http_get(proc, "/readyz")).status_code == 200
        await eventually(lambda: numsub(r, ns, room) == 2, 5, "both resubscribed",
                         interval=0.002)
    mark = len(chatter.acked_seqs(members))
    await eventually(lambda: len(chatter.acked_seqs(members)) >= mark + 15, 10, "posting")
    last = await chatter.finish()
    assert chatter.unavailable == 0  # none refused: only pub/sub was lost
    await asyncio.gather(*(m.catch_up(last) for m in members))
    assert_same_gap_free_stream(members, 1, last)  # every post delivered to everyone
    for m in members:
        assert len({ev["mid"] for ev in m.msgs()}) == last
    r.close()
    await close_all(members)


async def test_far_since_reads_nothing_from_the_log(
        pair: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    server, cl = pair
    room = fresh_room()
    r = admin(server)
    poster = Member(room, "poster", "moderator")
    await poster.join(cl.procs[0])
    for i in range(300):
        await poster.post(f"p{i}", f"p{i}")
    late = Member(room, "late")
    await late.join(cl.procs[0])  # the replica is loaded
    head = late.seq
    r.config_resetstat()
    for since in (0, head - 150):  # beyond LIVEHUB_MAX_REPLAY=100
        c = Member(room, f"far{since}")
        c.epoch, c.seq = late.epoch, since
        welcome = await c.join(cl.procs[0])
        assert welcome["recovered"] is False and len(welcome["history"]) == 100
        await close_all([c])
    stats = r.info("commandstats")
    assert "cmdstat_xrange" not in stats and "cmdstat_xrevrange" not in stats, stats
    # Inside the window it is recovered.
    near = Member(room, "near")
    near.epoch, near.seq = late.epoch, head - 60
    welcome = await near.join(cl.procs[1])
    assert welcome["recovered"] is True and len(welcome["history"]) == 60
    r.close()
    await close_all([poster, late, near])


async def test_unexpected_failure_in_gap_filling_is_survived(
        namespace: str, programme: Path, tmp_path: Path,
        fresh_room: Callable[[], str]) -> None:
    """Gap fills that raise something else than BrokerUnavailable (a bug, a bad entry):
    logged, retried, and the room recovers; joins meanwhile do not wait for them."""
    server = RedisServer().start()
    cl = Cluster(server.url, namespace, programme, tmp_path, env={"FAULTY_GAP_READS": "5"})
    cl.procs[0].module = "tests.faulty_serve"
    try:
        cl.start()
        ns, room = cl.namespace, fresh_room()
        r = admin(server)
        members = [Member(room, f"m{i}") for i in range(4)]  # m0, m2 on the faulty one
        await join_all(members, cl.procs)
        chatter = Chatter([members[1], members[3]]).start()  # posting through process 2
        await eventually(lambda: len(chatter.acked_seqs(members)) >= 10, 10, "posting")
        assert r.client_kill_filter(_type="pubsub") == 2  # both resync: process 1's fails
        await eventually(lambda: numsub(r, ns, room) == 2, 5, "resubscribed")
        # A join on the faulty process while its gap fill keeps failing is welcomed.
        loop = asyncio.get_running_loop()
        started = loop.time()
        newcomer = Member(room, "new")
        await newcomer.join(cl.procs[0])
        assert loop.time() - started < 3
        mark = max(chatter.acked_seqs(members))
        await eventually(lambda: max(chatter.acked_seqs(members)) >= mark + 10, 10, "more")
        last = await chatter.finish()
        await asyncio.gather(*(m.catch_up(last, timeout=15) for m in members))
        assert_same_gap_free_stream(members, 1, last)  # the room recovered on process 1
        text = cl.procs[0].log_text()
        assert "injected fault" in text and "gap fill failed; retrying" in text
        assert "Traceback" in text  # logged with its traceback, not swallowed
        r.close()
        await close_all([*members, newcomer])
    finally:
        cl.stop()
        server.cleanup()


async def test_http_endpoints_answer_503_while_redis_is_away(
        namespace: str, programme: Path, tmp_path: Path,
        fresh_room: Callable[[], str]) -> None:
    server = RedisServer().start()
    cl = Cluster(server.url, namespace, programme, tmp_path, n=1)
    try:
        cl.start()
        proc, room = cl.procs[0], fresh_room()
        assert (await http_get(proc, "/api/rooms")).status_code == 200
        server.stop(kill=True)
        await eventually_async(lambda: _status(proc, "/readyz", 503), 10, "/readyz 503")
        auth = {"Authorization": f"Bearer {token('moderator', 'Mod', sub='mod')}"}
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            answers = [
                await http.get("/api/rooms"),
                await http.get(f"/api/rooms/{room}/transcript", headers=auth),
                await http.post(f"/api/rooms/{room}/announce", json={"text": "hello"},
                                headers=auth),
            ]
        for answer in answers:
            assert answer.status_code == 503, (answer.request.url, answer.text)
            assert answer.json()["error"] == "unavailable" and answer.json()["message"]
        server.start()
        await eventually_async(lambda: _status(proc, "/api/rooms", 200), 10, "back")
        assert "Traceback" not in proc.log_text()
    finally:
        cl.stop()
        server.cleanup()


async def _status(proc: LivehubProcess, path: str, code: int) -> bool:
    return (await http_get(proc, path)).status_code == code
