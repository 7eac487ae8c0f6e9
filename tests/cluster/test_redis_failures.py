"""Redis failing under two real server processes, each on a private redis-server.

Pub/sub connections killed or dropped for overflowing their output buffer, a room's
log flushed, Redis restarted with and without persistence: no process is ever silently
deaf, nothing acknowledged goes missing, and a lost log is never replayed as if it were
the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.cluster.conftest import (
    Cluster,
    Member,
    assert_same_gap_free_stream,
    channel,
    close_all,
    eventually,
    eventually_async,
    http_get,
    join_all,
    numsub,
)
from tests.redis_server import RedisServer
from tests.support import LivehubProcess

pytestmark = pytest.mark.timeout(60)


def admin(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


def subscriber_of(r: redis.Redis, pid: int) -> dict[str, str]:
    """The pub/sub connection of the livehub process ``pid`` (named livehub-sub-<host>-<pid>-)."""
    subs = [c for c in r.client_list(_type="pubsub") if f"-{pid}-" in c.get("name", "")]
    assert len(subs) == 1, subs
    return subs[0]


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process frozen (SIGSTOP), as by a long pause; always resumed."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@dataclass
class Chatter:
    """People posting one post after another until stopped; ``unavailable`` is retried
    with the same id."""

    members: list[Member]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    unavailable: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> Chatter:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        await asyncio.gather(*(self._one(m) for m in self.members))

    async def _one(self, m: Member) -> None:
        i = 0
        while not self.stop.is_set():
            rid = f"{m.sub}-p{i}"
            ans = await m.post(f"post {rid}", rid)
            if ans["t"] == "ok":
                i += 1
                await asyncio.sleep(0.005)
            else:
                assert ans["code"] == "unavailable", ans
                self.unavailable += 1
                await asyncio.sleep(0.02)

    async def finish(self) -> int:
        """Stop; the last acknowledged seq."""
        assert self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        return max(a["seq"] for m in self.members for a in m.answers.values()
                   if a["t"] == "ok")

    def acked_seqs(self, members: list[Member]) -> set[int]:
        return {a["seq"] for m in members for a in m.answers.values() if a["t"] == "ok"}


@pytest.fixture(scope="module")
def steady_pair(namespace: str, programme: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[RedisServer, Cluster]]:
    """A private redis-server (no persistence) and two processes, shared by the tests that
    leave Redis as they found it (each in rooms of its own)."""
    server = RedisServer().start()
    cl = Cluster(server.url, namespace, programme, tmp_path_factory.mktemp("steady"))
    try:
        yield server, cl.start()
    finally:
        cl.stop()
        server.cleanup()


@pytest.fixture
async def steady(steady_pair: tuple[RedisServer, Cluster]) -> tuple[RedisServer, Cluster]:
    """``steady_pair``, once both processes are ready (an earlier test may have just
    given Redis back)."""
    await eventually_async(lambda: _ready_codes(steady_pair[1], 200), 10, "/readyz 200")
    return steady_pair


async def metric(proc: LivehubProcess, name: str) -> float:
    text = (await http_get(proc, "/metrics")).text
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[1])


async def test_pubsub_killed_resubscribes_and_fills_the_gap(
        steady: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    server, cl = steady
    p1, p2 = cl.procs
    ns, room = cl.namespace, fresh_room()
    r = admin(server)
    members = [Member(room, f"m{i}") for i in range(4)]  # m0, m2 on process 1; m1, m3 on 2
    await join_all(members, cl.procs)
    assert numsub(r, ns, room) == 2
    chatter = Chatter(members).start()
    await eventually(lambda: len(chatter.acked_seqs(members)) >= 20, 10, "posting")

    # 1. Every subscriber at once, while both processes serve and people post.
    assert r.client_kill_filter(_type="pubsub") == 2
    took_all = await eventually(lambda: numsub(r, ns, room) == 2, 5, "both resubscribed",
                                interval=0.002)
    seq_mark = max(chatter.acked_seqs(members))
    await eventually(lambda: max(chatter.acked_seqs(members)) >= seq_mark + 20, 10,
                     "posting again")

    # 2. Only process 1's subscriber, killed while process 1 is frozen, so that it stays
    # deaf while process 2 goes on committing: those events reach process 1 only by the
    # gap fill from the log.
    sub = subscriber_of(r, cl.pid(0))
    on2 = [members[1], members[3]]
    with stopped(cl.pid(0)):
        before = chatter.acked_seqs(on2)
        assert r.client_kill_filter(_id=sub["id"]) == 1
        await eventually(lambda: len(chatter.acked_seqs(on2) - before) >= 10, 10,
                         "posts through process 2 while process 1 is deaf")
        missed = chatter.acked_seqs(on2) - before
    resumed = time.monotonic()
    took_one = await eventually(lambda: numsub(r, ns, room) == 2, 5, "process 1 resubscribed",
                                interval=0.002)
    assert subscriber_of(r, cl.pid(0))["id"] != sub["id"]
    on1 = [members[0], members[2]]
    await eventually(lambda: all(missed <= {ev["seq"] for ev in m.events} for m in on1), 5,
                     "the missed events at process 1's people")
    caught_up = time.monotonic() - resumed
    await asyncio.sleep(0.3)
    last = await chatter.finish()

    await asyncio.gather(*(m.catch_up(last) for m in members))
    assert_same_gap_free_stream(members, 1, last)
    for m in members:
        mids = [ev["mid"] for ev in m.msgs()]
        assert len(mids) == len(set(mids)) == last
    assert await metric(p1, "livehub_broker_reconnects") >= 2
    assert await metric(p2, "livehub_broker_reconnects") >= 1
    assert cl.alive(0) and cl.alive(1)
    print(f"\nCLIENT KILL TYPE pubsub: NUMSUB back at 2 after {took_all * 1000:.0f} ms; "
          f"{chatter.unavailable} posts answered unavailable meanwhile and retried; "
          f"process 1 deaf while {len(missed)} events were committed, resubscribed "
          f"{took_one * 1000:.0f} ms after it resumed, its people had the missed events "
          f"{caught_up * 1000:.0f} ms after it resumed; {last} events, no gap, no duplicate")
    r.close()
    await close_all(members)


async def test_subscriber_dropped_for_output_buffer_overflow(
        steady: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    server, cl = steady
    r = admin(server)
    default = r.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    r.config_set("client-output-buffer-limit", "pubsub 256kb 0 0")
    try:
        await _overflow(server, cl, r, fresh_room)
    finally:
        r.config_set("client-output-buffer-limit", default)
        r.close()


async def _overflow(server: RedisServer, cl: Cluster, r: redis.Redis,
                    fresh_room: Callable[[], str]) -> None:
    p1, p2 = cl.procs
    ns, room, busy = cl.namespace, fresh_room(), fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    flooded = Member(busy, "fred")  # only process 1 listens to `busy`
    await a.join(p1)
    await b.join(p2)
    await flooded.join(p1)
    for i in range(3):
        await b.post(f"before {i}")
    await a.catch_up(3)
    sub = subscriber_of(r, cl.pid(0))
    junk = b"\xc1" * 64 * 1024  # not msgpack: the reader must shrug it off too

    with stopped(cl.pid(0)):  # a stalled process stops reading its subscription
        for i in range(5):
            await b.post(f"while stalled {i}")
        deadline = time.monotonic() + 10
        published = 0
        while any(c["id"] == sub["id"] for c in r.client_list(_type="pubsub")):
            assert time.monotonic() < deadline, "Redis did not drop the subscriber"
            for _ in range(8):
                r.publish(channel(ns, busy), junk)
            published += 8
        for i in range(5):  # process 1 now has no subscription at all
            await b.post(f"while dropped {i}")
    resumed = time.monotonic()
    took = await eventually(lambda: numsub(r, ns, room) == 2, 5, "process 1 resubscribed",
                            interval=0.002)
    await a.catch_up(13, timeout=5)
    caught_up = time.monotonic() - resumed
    ok = await a.post("after")
    await asyncio.gather(a.catch_up(ok["seq"]), b.catch_up(ok["seq"]))
    assert_same_gap_free_stream([a, b], 1, 14)
    assert [ev["text"] for ev in a.msgs()[3:13]] == [
        *(f"while stalled {i}" for i in range(5)), *(f"while dropped {i}" for i in range(5))]
    log = (server.dir / "redis.log").read_text(errors="replace")
    assert "output buffer limits" in log
    assert await metric(p1, "livehub_broker_reconnects") >= 1
    assert cl.alive(0) and cl.alive(1)
    print(f"\noutput buffer overflow after {published * 64} KiB: process 1 resubscribed "
          f"{took * 1000:.0f} ms after it resumed, its people complete after "
          f"{caught_up * 1000:.0f} ms")
    await close_all([a, b, flooded])


async def test_frozen_redis_is_noticed(
        steady: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    """Redis stops answering but keeps its sockets open (SIGSTOP: what a hung server or a
    silent network path looks like). Only a health check that needs a reply notices."""
    server, cl = steady
    p1, p2 = cl.procs
    room = fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    await a.post("before")
    assert server.pid is not None
    with stopped(server.pid):
        frozen = time.monotonic()
        took_503 = await eventually_async(lambda: _ready_codes(cl, 503), 6, "/readyz 503")
        started = time.monotonic()
        ans = await a.post("while frozen")
        assert ans["t"] == "error" and ans["code"] == "unavailable", ans
        assert time.monotonic() - started < 3
        for proc in (p1, p2):
            assert (await http_get(proc, "/healthz")).status_code == 200
        assert (await b.request({"t": "ping"}))["t"] == "ok"
    thawed = time.monotonic()
    while (ans := await b.post("after", "bob-after"))["t"] != "ok":
        assert time.monotonic() - thawed < 10, ans
        await asyncio.sleep(0.05)
    await asyncio.gather(a.catch_up(ans["seq"]), b.catch_up(ans["seq"]))
    took_flow = time.monotonic() - thawed
    assert ans["seq"] == 2 and [ev["text"] for ev in a.msgs()] == ["before", "after"]
    assert_same_gap_free_stream([a, b], 2, 2)
    print(f"\nRedis frozen: /readyz 503 after {took_503:.2f}s (of {thawed - frozen:.1f}s "
          f"frozen); posts flowed again {took_flow:.2f}s after it thawed")
    await close_all([a, b])


async def test_flushed_log_gets_a_new_epoch(
        steady: tuple[RedisServer, Cluster], fresh_room: Callable[[], str]) -> None:
    server, cl = steady
    p1, p2 = cl.procs
    ns, room = cl.namespace, fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    for m in (a, b, a):
        await m.post(f"old log, by {m.sub}")
    await asyncio.gather(a.catch_up(3), b.catch_up(3))
    old_epoch = a.epoch

    r = admin(server)
    keys = list(r.scan_iter(match=f"{ns}:{{{room}}}:*"))
    assert keys
    r.delete(*keys)

    # The first commit to the lost log starts a new one; each process notices when the
    # new epoch reaches it and sends its people to resume.
    rid = await b.send({"t": "post", "text": "first of the new log", "id": "bob-new"})
    closes = await asyncio.gather(a.expect_close(5), b.expect_close(5))
    assert [c.code for c in closes] == [1013, 1013], closes

    wa = await a.join(p2)  # the old epoch and since, on the other process
    assert wa["recovered"] is False and wa["epoch"] != old_epoch
    assert wa["seq"] == 1
    assert [(ev["seq"], ev["text"]) for ev in wa["history"]] == [(1, "first of the new log")]
    wb = await b.join(p1)
    assert (wb["recovered"], wb["epoch"], wb["seq"]) == (False, wa["epoch"], 1)
    # Its answer may have been overtaken by the close: a retry with the same id through
    # the other process gets the first answer, and nothing is published twice.
    retry = await b.post("first of the new log", rid)
    assert retry["t"] == "ok" and retry["seq"] == 1
    assert retry["mid"] == wa["history"][0]["mid"]
    new = Member(room, "newcomer")
    wn = await new.join(p1)
    assert wn["epoch"] == wa["epoch"] and wn["seq"] == 1 and "recovered" not in wn
    ok = await a.post("second of the new log")
    assert ok["seq"] == 2
    await asyncio.gather(b.catch_up(2), new.catch_up(2))
    r.close()
    await close_all([a, b, new])


async def test_redis_restarted_without_persistence(
        private_redis: Callable[..., RedisServer], make_cluster: Callable[..., Cluster],
        fresh_room: Callable[[], str]) -> None:
    server = private_redis(appendonly=False)
    cl = make_cluster(server.url)
    p1, p2 = cl.procs
    room = fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    await a.post("soon lost")
    await b.post("lost too")
    await a.catch_up(2)
    old_epoch = a.epoch

    server.restart()
    back = time.monotonic()
    # Nobody posts: the resync read after the reconnect is what finds the log gone.
    closes = await asyncio.gather(a.expect_close(10), b.expect_close(10))
    took = time.monotonic() - back
    assert [c.code for c in closes] == [1013, 1013]
    wa = await a.join(p2)
    assert (wa["recovered"], wa["seq"], wa["history"]) == (False, 0, [])
    assert wa["epoch"] != old_epoch
    wb = await b.join(p1)
    assert (wb["recovered"], wb["epoch"]) == (False, wa["epoch"])
    ok = await b.post("a new log")
    assert ok["seq"] == 1
    await a.catch_up(1)
    assert a.msgs()[-1]["mid"] == ok["mid"]
    print(f"\nRedis restarted without persistence: clients closed 1013 {took:.2f}s later")
    await close_all([a, b])


async def test_redis_back_from_an_older_snapshot(
        private_redis: Callable[..., RedisServer], make_cluster: Callable[..., Cluster],
        fresh_room: Callable[[], str]) -> None:
    """Redis restarts from an RDB snapshot older than the last commits (or fails over to
    a replica that lagged): the log keeps its epoch but loses its newest events, and the
    next commits reuse their seqs. The processes must not take those for events they
    already have, nor let anyone resume from a place in the lost events."""
    server = private_redis(appendonly=False)
    cl = make_cluster(server.url)
    p1, p2 = cl.procs
    room = fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    for i in range(3):
        await a.post(f"kept {i}")
    r = admin(server)
    assert r.save()  # the snapshot: seq 3
    r.close()
    for i in range(2):
        await b.post(f"lost {i}")
    await asyncio.gather(a.catch_up(5), b.catch_up(5))
    old_epoch = a.epoch

    server.restart(kill=True)  # no final save: back to seq 3, same epoch
    back = time.monotonic()
    closes = await asyncio.gather(a.expect_close(10), b.expect_close(10))
    took = time.monotonic() - back
    assert [c.code for c in closes] == [1013, 1013]
    wa = await a.join(p2)  # since 5 in the old epoch
    assert (wa["recovered"], wa["seq"]) == (False, 3) and wa["epoch"] != old_epoch
    assert [ev["text"] for ev in wa["history"]] == [f"kept {i}" for i in range(3)]
    wb = await b.join(p1)
    assert (wb["recovered"], wb["epoch"], wb["seq"]) == (False, wa["epoch"], 3)
    ok = await a.post("after")
    assert ok["seq"] == 4
    await b.catch_up(4)
    assert b.msgs()[-1]["mid"] == ok["mid"]  # seen, not taken for the lost seq 4
    for proc in (p1, p2):
        late = Member(room, f"late{proc.port}")
        welcome = await late.join(proc)
        assert [ev["text"] for ev in welcome["history"]] == [
            "kept 0", "kept 1", "kept 2", "after"]
        await late.close()
    print(f"\nRedis back from an older snapshot: new epoch, clients closed 1013 {took:.2f}s "
          f"after it returned")
    await close_all([a, b])


async def test_older_snapshot_rewritten_while_a_process_was_away(
        private_redis: Callable[..., RedisServer], make_cluster: Callable[..., Cluster],
        fresh_room: Callable[[], str]) -> None:
    """As above, but the reused seqs are committed (through the other process) before the
    process that had the lost events hears of anything: it tells them apart by content."""
    server = private_redis(appendonly=False)
    cl = make_cluster(server.url)
    p1, p2 = cl.procs
    room = fresh_room()
    a = Member(room, "ann")
    await a.join(p1)  # only process 1 has the room
    for i in range(3):
        await a.post(f"kept {i}")
    r = admin(server)
    assert r.save()
    r.close()
    for i in range(2):
        await a.post(f"lost {i}")
    await a.catch_up(5)
    old_epoch = a.epoch
    with stopped(cl.pid(0)):
        server.restart(kill=True)
        await eventually_async(lambda: _is_ready(p2), 10, "process 2 ready")
        b = Member(room, "bob")
        wb = await b.join(p2)  # process 2 loads the log as it now is
        assert (wb["seq"], wb["epoch"]) == (3, old_epoch)
        for i in range(3):
            assert (await b.post(f"new {i}"))["seq"] == 4 + i  # seqs 4 and 5 again
    closed = await a.expect_close(10)
    assert closed.code == 1013
    wa = await a.join(p1)
    assert wa["recovered"] is False and wa["epoch"] != old_epoch
    assert [ev["text"] for ev in wa["history"]] == [
        "kept 0", "kept 1", "kept 2", "new 0", "new 1", "new 2"]
    # Process 2 moves to the new epoch with the next event at the latest.
    rid = await b.send({"t": "post", "text": "next", "id": "bob-next"})
    await a.pump(lambda: bool(a.msgs()) and a.msgs()[-1]["text"] == "next", 5, "next")
    assert (await b.expect_close(5)).code == 1013
    wb = await b.join(p2)
    assert (wb["recovered"], wb["epoch"]) == (False, wa["epoch"])
    assert (await b.post("next", rid))["seq"] == 7  # the same post, answered again
    await close_all([a, b])


async def test_redis_restart_with_aof_is_an_outage_not_a_loss(
        private_redis: Callable[..., RedisServer], make_cluster: Callable[..., Cluster],
        fresh_room: Callable[[], str]) -> None:
    server = private_redis(appendonly=True)
    cl = make_cluster(server.url)
    p1, p2 = cl.procs
    room = fresh_room()
    a, b = Member(room, "ann"), Member(room, "bob")
    await a.join(p1)
    await b.join(p2)
    await a.post("before 1")
    await b.post("before 2")
    await asyncio.gather(a.catch_up(2), b.catch_up(2))
    epoch = a.epoch

    server.stop()  # SIGTERM by pid
    down = time.monotonic()
    took_503 = await eventually_async(lambda: _ready_codes(cl, 503), 5, "/readyz 503")
    for proc in (p1, p2):
        assert (await http_get(proc, "/healthz")).status_code == 200
    slowest = 0.0
    for m in (a, b, a, b):
        started = time.monotonic()
        ans = await m.post("during the outage")
        slowest = max(slowest, time.monotonic() - started)
        assert ans["t"] == "error" and ans["code"] == "unavailable", ans
        # The connection stays open and served.
        assert (await m.request({"t": "ping"}))["t"] == "ok"
        await asyncio.sleep(0.3)
    assert slowest < 3
    assert cl.alive(0) and cl.alive(1)
    outage = time.monotonic() - down

    server.start()  # same port and directory: the AOF brings the log back
    back = time.monotonic()
    ok = None
    while ok is None:
        ans = await a.post("after the outage", "ann-after")
        if ans["t"] == "ok":
            ok = ans
        else:
            assert ans["code"] == "unavailable", ans
            assert time.monotonic() - back < 10, "posts did not flow again"
            await asyncio.sleep(0.05)
    took_post = time.monotonic() - back
    await b.catch_up(ok["seq"])
    took_flow = time.monotonic() - back
    ok2 = await b.post("and back")
    await asyncio.gather(a.catch_up(ok2["seq"]), b.catch_up(ok2["seq"]))
    took_ready = await eventually_async(lambda: _ready_codes(cl, 200), 5, "/readyz 200")
    assert (ok["seq"], ok2["seq"]) == (3, 4) and a.epoch == b.epoch == epoch
    assert_same_gap_free_stream([a, b], 1, 4)
    assert [ev["text"] for ev in a.msgs()] == ["before 1", "before 2", "after the outage",
                                               "and back"]
    assert len(a.welcomes) == len(b.welcomes) == 1  # the same connections throughout
    assert cl.alive(0) and cl.alive(1)
    print(f"\nRedis down {outage:.1f}s: /readyz 503 after {took_503 * 1000:.0f} ms, slowest "
          f"`unavailable` {slowest * 1000:.0f} ms; after its return a post was acknowledged "
          f"in {took_post:.2f}s and reached the other process in {took_flow:.2f}s, "
          f"both ready within {took_post + took_ready:.2f}s")
    await close_all([a, b])


async def _ready_codes(cl: Cluster, code: int) -> bool:
    codes = [(await http_get(p, "/readyz")).status_code for p in cl.procs]
    return codes == [code] * len(codes)


async def _is_ready(proc: LivehubProcess) -> bool:
    return (await http_get(proc, "/readyz")).status_code == 200
