"""The cluster broker on its own: sharded fan-out, and subscriptions that follow a failover."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from livehub.broker.base import BrokerUnavailable
from livehub.broker.cluster import ClusterBroker, parse_cluster_url, sharded
from livehub.broker.redis import COMMIT_LUA
from tests.broker.conftest import Recorder, eventually
from tests.rediscluster.conftest import ClusterBrokers
from tests.rediscluster.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(60)


def ev(i: int) -> dict[str, object]:
    return {"t": "msg", "mid": f"m{i}", "text": f"post {i}", "ts": 1_700_000_000_000 + i}


def test_url_forms() -> None:
    assert parse_cluster_url("redis+cluster://a:7000,b:7001/") == (
        [("a", 7000), ("b", 7001)], None, None)
    assert parse_cluster_url("redis+cluster://u:p%40ss@[::1]:7000") == (
        [("::1", 7000)], "u", "p@ss")
    for bad in ("redis://a:1", "redis+cluster://a", "redis+cluster://a:1,", "redis+cluster://a:x",
                "redis+cluster://a:1/2", "redis+cluster://a:1?ssl=true"):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)


def test_commit_script_publishes_sharded() -> None:
    assert "SPUBLISH" not in COMMIT_LUA
    assert sharded(COMMIT_LUA).count("redis.call('SPUBLISH',") == COMMIT_LUA.count(
        "redis.call('PUBLISH',") == 1


async def test_events_travel_within_their_shard_only(
        redis_cluster: RedisCluster, cluster_brokers: ClusterBrokers, room_prefix: str) -> None:
    """SSUBSCRIBE on the slot's owner; nothing on the cluster-wide (PUBLISH) channels."""
    a, b = await cluster_brokers(), await cluster_brokers()
    rec = Recorder()
    room = f"{room_prefix}-s"
    await b.subscribe(room, rec)
    channel = f"livehub:{{{room}}}:ch"
    owner = redis_cluster.primary_of(channel)
    assert _shardnumsub(redis_cluster, owner, channel) == 1
    with redis_cluster.node(owner) as c:
        assert c.pubsub_numsub(channel)[0][1] == 0
    await a.commit(room, [ev(1), ev(2)])
    await rec.wait_seq(room, 2)
    assert rec.seqs(room) == [1, 2]
    await b.unsubscribe(room)
    await eventually(lambda: not _shardnumsub(redis_cluster, owner, channel), 5, "sunsubscribe")


def _shardnumsub(cluster: RedisCluster, port: int, channel: str) -> int:
    with cluster.node(port) as c:
        return int(c.pubsub_shardnumsub(channel)[0][1])


def _rooms_on_each_primary(cluster: RedisCluster, prefix: str) -> list[str]:
    """One room per primary, by their channels' slots."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < 3:
        room = f"{prefix}-{i}"
        found.setdefault(cluster.primary_of(f"livehub:{{{room}}}:ch"), room)
        i += 1
    return list(found.values())


async def test_subscriptions_follow_a_failover(
        redis_cluster: RedisCluster, cluster_brokers: ClusterBrokers, room_prefix: str) -> None:
    """CLUSTER FAILOVER of one room's primary: events reach the subscriber live again (no
    polling: a new commit arrives within a second), and it is told to resync."""
    a, b = await cluster_brokers(), await cluster_brokers()
    rec = Recorder()
    rooms = _rooms_on_each_primary(redis_cluster, room_prefix)
    for room in rooms:
        await b.subscribe(room, rec)
        await a.commit(room, [ev(1)])
        await rec.wait_seq(room, 1)
    victim = rooms[0]
    shard = redis_cluster.shard_of(f"livehub:{{{victim}}}:ch")
    await asyncio.to_thread(redis_cluster.failover, shard["replicas"][0])
    assert redis_cluster.primary_of(f"livehub:{{{victim}}}:ch") == shard["replicas"][0]
    # Commits during the switch may be refused; a retry goes through the new primary.
    for _ in range(50):
        try:
            await a.commit(victim, [ev(2)])
            break
        except Exception:
            await asyncio.sleep(0.1)
    await eventually(lambda: victim in rec.resyncs, 10, "on_resync after the failover")
    for i, room in enumerate(rooms):
        await a.commit(room, [ev(10 + i)])
    for room in rooms:
        await rec.wait_seq(room, 3 if room == victim else 2, timeout=5)
    assert b.moves >= 1
    assert (await b.read(victim)).head == 3


async def test_unreachable_cluster_is_unavailable_not_an_error(room_prefix: str) -> None:
    broker = ClusterBroker("redis+cluster://127.0.0.1:1", connect_timeout=0.2,
                           command_timeout=0.3, backoff_cap=0.2)
    await broker.start()
    try:
        assert not broker.ready
        with pytest.raises(BrokerUnavailable):
            await broker.commit(f"{room_prefix}-x", [ev(1)])
    finally:
        await broker.close()


def _migrate_slot(cluster: RedisCluster, slot: int, src: int, dst: int) -> None:
    """Move ``slot`` with its keys from primary ``src`` to primary ``dst`` (as
    ``redis-cli --cluster reshard`` does), and tell every primary."""
    with cluster.node(src) as s, cluster.node(dst) as d:
        src_id, dst_id = s.execute_command("CLUSTER MYID"), d.execute_command("CLUSTER MYID")
        d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := s.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            s.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        d.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        s.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    cluster.wait_ok()


async def test_subscriptions_follow_a_slot_migration(
        redis_cluster: RedisCluster, cluster_brokers: ClusterBrokers, room_prefix: str) -> None:
    """A room's slot resharded to another primary: commits follow MOVED, the subscription
    moves to the new owner and the subscriber is told to resync."""
    a, b = await cluster_brokers(), await cluster_brokers()
    rec = Recorder()
    room = f"{room_prefix}-moving"
    channel = f"livehub:{{{room}}}:ch"
    await b.subscribe(room, rec)
    await a.commit(room, [ev(1)])
    await rec.wait_seq(room, 1)
    src = redis_cluster.primary_of(channel)
    dst = next(p for p in _rooms_primaries(redis_cluster) if p != src)
    await asyncio.to_thread(_migrate_slot, redis_cluster, key_slot(channel.encode()), src, dst)
    assert redis_cluster.primary_of(channel) == dst
    await a.commit(room, [ev(2)])  # the cluster client follows MOVED
    await eventually(lambda: room in rec.resyncs, 10, "on_resync after the migration")
    await eventually(lambda: _shardnumsub(redis_cluster, dst, channel) == 1, 5, "SSUBSCRIBE")
    await a.commit(room, [ev(3)])
    await rec.wait_seq(room, 3, timeout=5)
    assert (await b.read(room)).head == 3


def _rooms_primaries(cluster: RedisCluster) -> list[int]:
    return sorted({cluster.primary_of(f"{{k{i}}}") for i in range(50)})
