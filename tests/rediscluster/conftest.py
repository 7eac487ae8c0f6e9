"""Fixtures for the Redis Cluster tests: one real local cluster for the whole session.

Six ``redis-server --cluster-enabled yes`` nodes (three primaries, a replica each)
of the tests' own; tests that fail a node over or kill it leave the cluster with
three working primaries again. Skips when redis-server/redis-cli are missing.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from livehub.broker.base import Broker
from livehub.broker.cluster import ClusterBroker
from tests.broker.conftest import FAST, Backend
from tests.rediscluster.redis_cluster import RedisCluster

CLUSTER_FAST: dict[str, Any] = {**FAST, "topology_interval": 0.5}


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.skip("redis-server and redis-cli are needed for the Redis Cluster tests")
    cluster = RedisCluster()
    try:
        yield cluster.create()
    finally:
        cluster.cleanup()


def delete_keys(cluster: RedisCluster, pattern: str) -> None:
    """Delete ``pattern``'s keys on every running primary (replicas follow)."""
    for port in cluster.running():
        with cluster.node(port) as c:
            try:
                if c.execute_command("ROLE")[0] != b"master":
                    continue
                keys = list(c.scan_iter(match=pattern, count=1000))
                for key in keys:  # one by one: they live in many slots
                    c.delete(key)
            except redis.RedisError:
                continue


class ClusterBrokers:
    """Starts ClusterBrokers with fast timers; closes them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[ClusterBroker] = []

    async def __call__(self, **kwargs: Any) -> ClusterBroker:
        broker = ClusterBroker(self.url, **{**CLUSTER_FAST, **kwargs})
        self.made.append(broker)
        await broker.start()
        return broker

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.made))


@pytest.fixture
def room_prefix() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def cluster_brokers(redis_cluster: RedisCluster, room_prefix: str
                          ) -> AsyncIterator[ClusterBrokers]:
    brokers = ClusterBrokers(redis_cluster.url)
    yield brokers
    await brokers.close()
    delete_keys(redis_cluster, f"livehub:{{{room_prefix}*")


@pytest.fixture
async def backend(cluster_brokers: ClusterBrokers) -> AsyncIterator[Backend]:
    """The broker contract's backend (tests/broker/test_contract.py), on the cluster."""

    async def new(max_log: int | None = None) -> Broker:
        return await cluster_brokers(max_log=max_log)

    yield Backend("redis-cluster", new, shared=True)
