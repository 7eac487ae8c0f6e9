"""Real ``livehub serve`` processes on a real Redis Cluster (``--redis redis+cluster://``).

Rooms are picked by the primary that owns their slot, so fan-out is checked on every
shard; a server process is SIGKILLed; a room's primary is failed over (planned) and
killed (crash) in the middle of a burst of posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, Member, assert_same_gap_free_stream, close_all
from tests.cluster.test_crash import post_all
from tests.integration.conftest import write_programme
from tests.rediscluster.conftest import delete_keys
from tests.rediscluster.redis_cluster import RedisCluster
from tests.support import Closed, LivehubProcess

pytestmark = pytest.mark.timeout(90)

ROOMS = 60


@pytest.fixture(scope="module")
def namespace() -> str:
    return f"lhrc-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_programme(tmp_path_factory.mktemp("rcluster") / "programme.toml", rooms=ROOMS)


class Rooms:
    """Hands out the programme's rooms, each once, by the primary that owns them."""

    def __init__(self, cluster: RedisCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.used: set[str] = set()

    def channel(self, room: str) -> str:
        return f"{self.namespace}:{{{room}}}:ch"

    def on(self, primary: int | None = None) -> str:
        for i in range(ROOMS):
            room = f"room-{i:03d}"
            if room not in self.used and (
                    primary is None or self.cluster.primary_of(self.channel(room)) == primary):
                self.used.add(room)
                return room
        raise AssertionError("raise ROOMS in tests/rediscluster/test_servers.py")

    def primaries(self) -> list[int]:
        return sorted({self.cluster.primary_of(self.channel(f"room-{i:03d}"))
                       for i in range(ROOMS)})


@pytest.fixture(scope="module")
def rooms(redis_cluster: RedisCluster, namespace: str) -> Iterator[Rooms]:
    yield Rooms(redis_cluster, namespace)
    delete_keys(redis_cluster, f"{namespace}:*")


@pytest.fixture
def servers(redis_cluster: RedisCluster, namespace: str, programme: Path, tmp_path: Path
            ) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(n: int = 2) -> Cluster:
        log_dir = tmp_path / f"servers-{len(made)}"
        log_dir.mkdir()
        cl = Cluster(redis_cluster.url, namespace, programme, log_dir, n=n)
        made.append(cl)
        return cl.start()

    yield make
    for cl in made:
        cl.stop()


async def test_fanout_across_processes_on_every_primary(
        servers: Callable[..., Cluster], rooms: Rooms) -> None:
    cl = servers()
    p1, p2 = cl.procs
    picked = [rooms.on(port) for port in rooms.primaries()]
    assert len(picked) == 3
    everyone: list[Member] = []
    for room in picked:
        members = [Member(room, f"{room}-m{i}") for i in range(4)]
        for i, m in enumerate(members):
            await m.join(p1 if i % 2 else p2)

        async def chat(m: Member) -> None:
            for j in range(5):
                assert (await m.post(f"hello {j} from {m.sub}"))["t"] == "ok"

        await asyncio.gather(*(chat(m) for m in members))
        await asyncio.gather(*(m.catch_up(20) for m in members))
        assert_same_gap_free_stream(members, 1, 20)
        everyone += members
    await close_all(everyone)


async def test_sigkill_of_a_process_resumes_elsewhere_with_nothing_missed(
        servers: Callable[..., Cluster], rooms: Rooms) -> None:
    cl = servers()
    p1, p2 = cl.procs
    room = rooms.on()
    victims = [Member(room, f"victim{i}") for i in range(2)]
    others = [Member(room, f"other{i}") for i in range(2)]
    for m in victims:
        await m.join(p1)
    for m in others:
        await m.join(p2)
    n = 30
    ids = {m.sub: [f"{m.sub}-{i}" for i in range(n)] for m in [*victims, *others]}
    moves: list[tuple[str, bool]] = []
    tasks = [asyncio.create_task(post_all(m, ids[m.sub], [p1, p2] if m in victims else [p2],
                                          moves))
             for m in [*victims, *others]]
    deadline = time.monotonic() + 10
    while min(sum(i in m.answers for i in ids[m.sub]) for m in victims) < 5:
        assert time.monotonic() < deadline, "posting did not start"
        await asyncio.sleep(0.005)
    cl.kill9(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 40)
    everyone = [*victims, *others]
    assert sorted(moves) == [(m.sub, True) for m in victims]
    answers = [m.answers[i] for m in everyone for i in ids[m.sub]]
    assert all(a["t"] == "ok" for a in answers), [a for a in answers if a["t"] != "ok"][:3]
    last = max(a["seq"] for a in answers)
    assert last == 4 * n
    await asyncio.gather(*(m.catch_up(last) for m in everyone))
    assert_same_gap_free_stream(everyone, 1, last)
    await close_all(everyone)


class Poster:
    """Posts ``n`` posts one after another; ``unavailable`` is retried with the same id, and a
    closed connection resumes on the next process (with ``since``)."""

    def __init__(self, m: Member, procs: list[LivehubProcess], n: int) -> None:
        self.m = m
        self.procs = procs
        self.ids = [f"{m.sub}-{i}" for i in range(n)]
        self.ok: dict[str, dict[str, Any]] = {}
        self.unavailable = 0
        self.welcomes: list[dict[str, Any]] = []
        self._home = itertools.count(1)

    async def run(self) -> None:
        for rid in self.ids:
            while rid not in self.ok:
                try:
                    ans = await self.m.request({"t": "post", "text": f"post {rid}", "id": rid},
                                               timeout=10)
                except Closed:
                    proc = self.procs[next(self._home) % len(self.procs)]
                    self.welcomes.append(await self.m.join(proc))
                    continue
                if ans["t"] == "ok":
                    self.ok[rid] = ans
                else:
                    assert ans["code"] == "unavailable", ans
                    self.unavailable += 1
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


async def _burst_with(action: Callable[[], None], cl: Cluster, room: str, n: int = 80
                      ) -> tuple[list[Poster], list[Member]]:
    p1, p2 = cl.procs
    posters = [Poster(Member(room, f"poster{i}"), [p1, p2] if i % 2 else [p2, p1], n)
               for i in range(2)]
    listeners = [Member(room, f"listener{i}") for i in range(2)]
    for i, m in enumerate([*(p.m for p in posters), *listeners]):
        await m.join(cl.procs[i % 2])
    tasks = [asyncio.create_task(p.run()) for p in posters]
    deadline = time.monotonic() + 10
    while min(len(p.ok) for p in posters) < 15:
        assert time.monotonic() < deadline, "posting did not start"
        await asyncio.sleep(0.005)
    await asyncio.to_thread(action)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return posters, listeners


async def _follow(m: Member, procs: list[LivehubProcess], seq: int) -> None:
    """Catch up to ``seq``, resuming on the other process if the server closes."""
    for attempt in range(4):
        try:
            await m.catch_up(seq, timeout=15)
            return
        except Closed:
            await m.join(procs[attempt % 2])
    raise AssertionError(f"{m.sub} could not catch up to {seq}")


async def test_planned_failover_mid_burst_loses_no_acknowledged_post(
        redis_cluster: RedisCluster, servers: Callable[..., Cluster], rooms: Rooms) -> None:
    cl = servers()
    room = rooms.on()
    shard = redis_cluster.shard_of(rooms.channel(room))
    posters, listeners = await _burst_with(
        lambda: redis_cluster.failover(shard["replicas"][0]), cl, room)
    assert redis_cluster.primary_of(rooms.channel(room)) == shard["replicas"][0]
    everyone = [*(p.m for p in posters), *listeners]
    last = 2 * len(posters[0].ids)
    # Every post answered ok once, numbered 1..last without a gap: nothing acknowledged
    # was lost and no retry was committed twice.
    assert sorted(a["seq"] for p in posters for a in p.ok.values()) == list(range(1, last + 1))
    await asyncio.gather(*(_follow(m, cl.procs, last) for m in everyone))
    assert all(w["recovered"] for m in everyone for w in m.welcomes[1:])
    assert_same_gap_free_stream(everyone, 1, last)
    print(f"\nplanned failover: {sum(p.unavailable for p in posters)} posts answered "
          f"unavailable and retried; every one of {last} acknowledged posts delivered")
    await close_all(everyone)


async def test_a_promoted_replica_that_lagged_gets_a_new_epoch(
        redis_cluster: RedisCluster, servers: Callable[..., Cluster], rooms: Rooms) -> None:
    """What asynchronous replication loses, made certain: the primary keeps acknowledging
    while its replica is cut off, then the replica takes over as it is. The acknowledged
    tail is gone, and every client learns so: close 1013, then ``recovered: false``
    under a new epoch; nobody is shown a seq from the lost tail as if it still held."""
    cl = servers()
    p1, p2 = cl.procs
    room = rooms.on()
    shard = redis_cluster.shard_of(rooms.channel(room))
    replica = shard["replicas"][0]
    ann, bob = Member(room, "ann"), Member(room, "bob")
    await ann.join(p1)
    await bob.join(p2)
    for i in range(5):
        assert (await ann.post(f"kept {i}"))["t"] == "ok"
    await bob.catch_up(5)
    await asyncio.sleep(0.5)  # replicated by now
    before = ann.epoch
    with redis_cluster.node(replica) as c:
        # Cut the replica off: it logs in to its primary as a user that does not exist,
        # so it cannot sync again after its link is killed.
        c.config_set("masteruser", "nobody-here")
        c.config_set("masterauth", "wrong")
        c.execute_command("CLIENT KILL TYPE master")
    try:
        for i in range(5):
            assert (await ann.post(f"lost {i}"))["t"] == "ok"
        await bob.catch_up(10)
        with redis_cluster.node(replica) as c:
            c.execute_command("CLUSTER FAILOVER TAKEOVER")  # as it is: no catching up
        await asyncio.to_thread(redis_cluster.wait_ok, 30)
    finally:
        with redis_cluster.node(replica) as c:
            c.config_set("masteruser", "")
            c.config_set("masterauth", "")
    assert redis_cluster.primary_of(rooms.channel(room)) == replica
    for m in (ann, bob):
        closed = await m.expect_close(15)
        assert closed.code == 1013, closed
        welcome = await m.join(p1)
        assert welcome["recovered"] is False and welcome["epoch"] != before, welcome
        assert welcome["seq"] <= 5  # the log as the new primary has it
    assert (await ann.post("after"))["t"] == "ok"
    await close_all([ann, bob])


async def test_primary_crash_mid_burst(
        redis_cluster: RedisCluster, servers: Callable[..., Cluster], rooms: Rooms) -> None:
    """SIGKILL of a room's primary: its replica takes over after the node timeout.

    Replication is asynchronous, so what the primary acknowledged but had not yet sent to
    its replica is lost. The outcome either way: every post ends up answered ok, and each
    person's stream is either complete (nothing was lost) or was rebuilt from a renewed
    epoch (``recovered: false``), never a silent gap or a reused seq.
    """
    cl = servers()
    room = rooms.on()
    shard = redis_cluster.shard_of(rooms.channel(room))
    killed = shard["primary"]
    try:
        posters, listeners = await _burst_with(lambda: redis_cluster.kill(killed), cl, room)
        everyone = [*(p.m for p in posters), *listeners]
        assert all(len(p.ok) == len(p.ids) for p in posters)
        head = max(a["seq"] for p in posters for a in p.ok.values())
        await asyncio.gather(*(_follow(m, cl.procs, head) for m in everyone))
        renewed = any(not w["recovered"] for m in everyone for w in m.welcomes[1:])
        if renewed:
            epochs = {m.epoch for m in everyone}
            assert len(epochs) == 1 and epochs != {m.welcomes[0]["epoch"] for m in everyone}
        else:
            assert_same_gap_free_stream(everyone, 1, 2 * len(posters[0].ids))
        print(f"\nprimary killed: {sum(p.unavailable for p in posters)} posts answered "
              f"unavailable and retried; lost tail detected (epoch renewed): {renewed}")
        await close_all(everyone)
    finally:
        # The killed node comes back as a replica of the promoted one.
        with contextlib.suppress(Exception):
            redis_cluster.start_node(killed)
        redis_cluster.wait_ok(60)
