"""The Redis broker across processes and through Redis failures.

Anything that breaks Redis (kill clients, stop, restart, reconfigure) runs on a
private redis-server; the shared one only sees this test's own room keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import redis
from redis.asyncio import Redis

from livehub.broker import make_broker
from livehub.broker.base import BrokerUnavailable, Event
from livehub.broker.memory import MemoryBroker
from livehub.broker.redis import RedisBroker
from tests.broker.conftest import REDIS_URL, Recorder, RedisBrokers, eventually, eventually_async
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]


def ev(i: int) -> Event:
    return {"t": "msg", "mid": f"m{i}", "text": f"post {i}"}


async def numsub(client: Redis, channel: str) -> int:
    [(_, n)] = await client.pubsub_numsub(channel)
    return int(n)


async def test_make_broker() -> None:
    assert isinstance(make_broker(None, max_log=100), MemoryBroker)
    b = make_broker("redis://127.0.0.1:1/0", max_log=100)
    assert isinstance(b, RedisBroker) and b.max_log is None  # Redis keeps the whole record
    await b.close()  # never started: nothing to stop
    b = make_broker("redis://127.0.0.1:1/0", max_log=100, redis_max_log=500, namespace="t1")
    assert isinstance(b, RedisBroker) and b.max_log == 500 and b.namespace == "t1"
    await b.close()


async def test_two_processes_see_each_others_events(
    new_redis_broker: RedisBrokers, room_prefix: str,
) -> None:
    a, b = await new_redis_broker(), await new_redis_broker()
    assert a.ready and b.ready
    room = f"{room_prefix}-a"
    rec_a, rec_b = Recorder(), Recorder()
    await a.subscribe(room, rec_a)
    await b.subscribe(room, rec_b)
    c1 = await a.commit(room, [ev(1)])
    c2 = await b.commit(room, [ev(2), ev(3)])
    assert (c1.seq, c2.seq) == (1, 3) and c1.epoch == c2.epoch
    for rec in (rec_a, rec_b):
        await rec.wait_seq(room, 3)
        assert rec.seqs(room) == [1, 2, 3]
        assert [e["mid"] for e in rec.events[room]] == ["m1", "m2", "m3"]
        assert set(rec.epochs[room]) == {c1.epoch}
    assert rec_a.resyncs == [] and rec_b.resyncs == []


async def test_wire_format(new_redis_broker: RedisBrokers, admin: Redis, room_prefix: str) -> None:
    """Payloads carry no seq; the message is msgpack [epoch, first_seq, [event, ...]]."""
    b = await new_redis_broker()
    room = f"{room_prefix}-a"
    channel = f"livehub:{{{room}}}:ch"
    pubsub = admin.pubsub()
    await pubsub.subscribe(channel)
    confirm = await pubsub.get_message(timeout=2)
    assert confirm is not None and confirm["type"] == "subscribe"
    stale_seq = {**ev(2), "seq": 42}
    c = await b.commit(room, [ev(1), stale_seq])
    msg = await pubsub.get_message(timeout=2)
    assert msg is not None and msg["type"] == "message"
    epoch, first, events = msgpack.unpackb(msg["data"])
    assert (epoch, first) == (c.epoch, 1)
    assert events == [ev(1), ev(2)]  # the stale seq was not stored
    entries = await admin.xrange(f"livehub:{{{room}}}:log")
    assert entries is not None
    assert [eid for eid, _ in entries] == [b"1-0", b"2-0"]
    fields = entries[1][1]
    assert fields is not None and msgpack.unpackb(fields[b"p"]) == ev(2)
    assert await admin.get(f"livehub:{{{room}}}:seq") == b"2"
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_unsubscribe_leaves_the_channel(
    new_redis_broker: RedisBrokers, admin: Redis, room_prefix: str,
) -> None:
    a, b = await new_redis_broker(), await new_redis_broker()
    room = f"{room_prefix}-a"
    channel = f"livehub:{{{room}}}:ch"
    await a.subscribe(room, Recorder())
    await b.subscribe(room, Recorder())
    assert await numsub(admin, channel) == 2  # subscribe() returns once Redis confirmed
    await a.unsubscribe(room)
    await eventually_async(lambda: _numsub_is(admin, channel, 1), what="NUMSUB 1")


async def _numsub_is(client: Redis, channel: str, n: int) -> bool:
    return await numsub(client, channel) == n


async def test_flushed_log_gets_new_epoch(
    new_redis_broker: RedisBrokers, admin: Redis, room_prefix: str,
) -> None:
    b = await new_redis_broker()
    room = f"{room_prefix}-a"
    rec = Recorder()
    await b.subscribe(room, rec)
    old = await b.commit(room, [ev(1), ev(2), ev(3)])

    async def flush() -> None:
        keys = [k async for k in admin.scan_iter(match=f"livehub:{{{room}}}:*")]
        assert keys
        await admin.delete(*keys)

    await flush()
    h = await b.read(room, after=3)
    assert h.epoch != old.epoch and h.head == 0 and h.events == []
    c = await b.commit(room, [ev(4)])
    assert c.seq == 1 and c.epoch == h.epoch  # read created the epoch the commit used

    await flush()  # this time the commit is the first to notice
    c2 = await b.commit(room, [ev(5)])
    assert c2.seq == 1 and c2.epoch not in (old.epoch, h.epoch)
    await eventually(lambda: len(rec.epochs.get(room, [])) == 3)
    assert rec.seqs(room) == [1, 2, 3, 1, 1]
    assert rec.epochs[room] == [old.epoch, h.epoch, c2.epoch]


async def test_client_kill_pubsub_reconnects_and_resyncs(
    private_redis: RedisServer, new_redis_broker: RedisBrokers,
) -> None:
    a = await new_redis_broker(private_redis.url)
    b = await new_redis_broker(private_redis.url)
    room = "kill-room"
    channel = f"livehub:{{{room}}}:ch"
    rec_a, rec_b = Recorder(), Recorder()
    await a.subscribe(room, rec_a)
    await b.subscribe(room, rec_b)
    admin = Redis.from_url(private_redis.url)
    try:
        assert await numsub(admin, channel) == 2
        killed = await admin.client_kill_filter(_type="pubsub")
        assert killed == 2
        await eventually(lambda: a.reconnects == 1 and b.reconnects == 1, what="reconnects")
        await eventually(lambda: rec_a.resyncs == [room] and rec_b.resyncs == [room],
                         what="on_resync")
        assert await numsub(admin, channel) == 2
        assert a.ready and b.ready
        c = await a.commit(room, [ev(1)])
        await rec_a.wait_seq(room, c.seq)
        await rec_b.wait_seq(room, c.seq)
    finally:
        await admin.aclose()


@pytest.mark.parametrize("appendonly", [False, True], ids=["no-persistence", "aof"])
async def test_redis_stopped_and_restarted(
    redis_servers: Callable[..., RedisServer], new_redis_broker: RedisBrokers, appendonly: bool,
) -> None:
    server = redis_servers(appendonly=appendonly).start()
    a = await new_redis_broker(server.url, heartbeat_ttl=3.0)
    b = await new_redis_broker(server.url, heartbeat_ttl=3.0)
    room = "restart-room"
    rec_a, rec_b = Recorder(), Recorder()
    await a.subscribe(room, rec_a)
    await b.subscribe(room, rec_b)
    before = await a.commit(room, [ev(1), ev(2)])
    await rec_b.wait_seq(room, 2)
    await a.set_online(room, 2)
    await b.set_online(room, 1)
    assert await a.online([room]) == {room: 3}

    server.stop()
    await eventually(lambda: not a.ready and not b.ready, 3, "not ready")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BrokerUnavailable):
        await a.commit(room, [ev(3)])
    with pytest.raises(BrokerUnavailable):
        await b.read(room)
    assert loop.time() - started < 3
    async with asyncio.timeout(3):  # must not hang while Redis is away
        await a.set_online(room, 5)
        assert await a.online([room]) == {room: 5}  # what this process knows

    server.restart()
    await eventually(lambda: a.ready and b.ready, 5, "ready again")
    await eventually(lambda: rec_a.resyncs == [room] and rec_b.resyncs == [room],
                     what="on_resync")
    assert a.reconnects == 1 and b.reconnects == 1
    after = await b.commit(room, [ev(4)])
    if appendonly:  # the log survived: same epoch, numbering carries on
        assert (after.epoch, after.seq) == (before.epoch, 3)
    else:  # the log is gone: a new epoch, numbering starts again
        assert after.epoch != before.epoch and after.seq == 1
    for rec in (rec_a, rec_b):
        await eventually(_last_is(rec, room, after.epoch, after.seq), what="the new event")
    # Counts are written again on reconnect, including the one set while away.
    await eventually_async(lambda: _online_is(b, room, 6), what="online 6")


def _last_is(rec: Recorder, room: str, epoch: str, seq: int) -> Callable[[], bool]:
    return lambda: rec.epochs[room][-1] == epoch and rec.seqs(room)[-1] == seq


async def _online_is(broker: RedisBroker, room: str, n: int) -> bool:
    return await broker.online([room]) == {room: n}


async def test_redis_down_at_start(
    redis_servers: Callable[..., RedisServer], new_redis_broker: RedisBrokers,
) -> None:
    server = redis_servers(port=free_port())
    a = await new_redis_broker(server.url)
    assert not a.ready
    rec = Recorder()
    await a.subscribe("early", rec)  # recorded; subscribed once Redis is there
    with pytest.raises(BrokerUnavailable):
        await a.commit("early", [ev(1)])
    await a.set_online("early", 2)
    server.start()
    await eventually(lambda: a.ready, 5, "ready")
    # Ready means commands work; pub/sub may still be on its way (issue 14).
    await eventually(lambda: rec.resyncs == ["early"], 5, "subscribed and resynced")
    assert a.reconnects == 0
    c = await a.commit("early", [ev(1)])
    await rec.wait_seq("early", c.seq)
    assert await a.online(["early"]) == {"early": 2}


_CHILD = """
import asyncio, sys
from livehub.broker.redis import RedisBroker

async def main():
    url, pid, ttl, room = sys.argv[1:5]
    broker = RedisBroker(url, process_id=pid, heartbeat_ttl=float(ttl))
    await broker.start()
    await broker.set_online(room, 4)
    print("up", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_dead_process_count_disappears(
    new_redis_broker: RedisBrokers, admin: Redis, room_prefix: str,
) -> None:
    room = f"{room_prefix}-a"
    pid = f"{room_prefix}-child"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, REDIS_URL, pid, "0.6", room,
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 15) == b"up\n"
        a = await new_redis_broker(heartbeat_ttl=0.6)
        await a.set_online(room, 1)
        assert await a.online([room]) == {room: 5}
        child.kill()  # no goodbye: only the heartbeat TTL can tell
        await child.wait()
        await eventually_async(lambda: _online_is(a, room, 1), 5, "dead count gone")
        assert not await admin.hexists(f"livehub:{{{room}}}:online", pid)  # pruned
        assert await admin.exists(f"livehub:proc:{pid}") == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


async def test_clean_close_removes_counts_at_once(
    new_redis_broker: RedisBrokers, room_prefix: str,
) -> None:
    a, b = await new_redis_broker(), await new_redis_broker()
    room = f"{room_prefix}-a"
    await a.set_online(room, 2)
    await b.set_online(room, 3)
    assert await a.online([room]) == {room: 5}
    await b.close()
    assert await a.online([room]) == {room: 2}


class FreezableProxy:
    """A TCP proxy that can stop forwarding while keeping every socket open.

    Frozen, it is a half-open path: no FIN, no RST, no data, the way a dead peer or
    a dropped NAT entry looks to the process on this side.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_half_open_connection_is_detected(
    private_redis: RedisServer, new_redis_broker: RedisBrokers,
) -> None:
    proxy = await FreezableProxy(private_redis.port).start()
    try:
        a = await new_redis_broker(proxy.url)  # behind the proxy
        b = await new_redis_broker(private_redis.url)  # direct
        room = "half-open"
        rec = Recorder()
        await a.subscribe(room, rec)
        await b.commit(room, [ev(1)])
        await rec.wait_seq(room, 1)

        proxy.flowing.clear()
        # Only the PING health check can notice: the socket looks fine.
        # (Commands fail too, so it is not ready: issue 14 split the two.)
        await eventually(lambda: not a.subscribed and not a.ready, 3, "deafness noticed")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BrokerUnavailable):
            await a.commit(room, [ev(2)])
        assert loop.time() - started < 3
        missed = await b.commit(room, [ev(2)])  # published while `a` cannot hear

        proxy.flowing.set()
        await eventually(lambda: a.ready and a.subscribed, 5, "reconnected")
        await eventually(lambda: rec.resyncs == [room], what="on_resync")
        assert a.reconnects == 1 and a.errors >= 1
        # The hub would now read the gap from the log:
        h = await a.read(room, after=1)
        assert [e["seq"] for e in h.events] == [missed.seq]
        c = await b.commit(room, [ev(3)])
        await rec.wait_seq(room, c.seq)
    finally:
        await proxy.close()


async def test_output_buffer_overflow_reconnects(
    private_redis: RedisServer, new_redis_broker: RedisBrokers,
) -> None:
    admin = Redis.from_url(private_redis.url)
    await admin.config_set("client-output-buffer-limit", "pubsub 256kb 0 0")
    await admin.aclose()
    a = await new_redis_broker(private_redis.url)
    room = "flooded"
    channel = f"livehub:{{{room}}}:ch"
    rec = Recorder()
    await a.subscribe(room, rec)

    def flood() -> None:
        # Publish faster than the stalled subscriber reads until Redis drops it.
        client = redis.Redis.from_url(private_redis.url)
        junk = b"\xc1" * 256 * 1024  # not msgpack: the reader must shrug it off too
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                for _ in range(16):
                    client.publish(channel, junk)
                if client.pubsub_numsub(channel)[0][1] == 0:
                    return
        finally:
            client.close()

    # Block this event loop on purpose, as a process stalled by a long GC pause would be.
    thread = threading.Thread(target=flood)
    thread.start()
    thread.join()  # the stall is the point
    await eventually(lambda: a.reconnects == 1 and rec.resyncs == [room], 5, "reconnect")
    c = await a.commit(room, [ev(1)])
    await rec.wait_seq(room, c.seq)
    assert rec.seqs(room) == [c.seq]


async def test_read_pages_through_long_logs(
    new_redis_broker: RedisBrokers, room_prefix: str,
) -> None:
    b = await new_redis_broker(max_log=8)
    b.read_page = 3  # so that a short log spans pages
    room = f"{room_prefix}-a"
    for i in range(1, 11):
        await b.commit(room, [ev(i)])
    whole = await b.read(room)
    assert [e["seq"] for e in whole.events] == list(range(3, 11))
    assert not whole.complete and whole.head == 10
    part = await b.read(room, after=3, limit=5)
    assert [e["seq"] for e in part.events] == [4, 5, 6, 7, 8] and part.complete
    assert [e["seq"] for e in (await b.read(room, after=4)).events] == [5, 6, 7, 8, 9, 10]
    assert [e["mid"] for e in (await b.read(room, after=8, limit=7)).events] == ["m9", "m10"]
