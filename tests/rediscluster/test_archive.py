"""Retention on Redis Cluster: archive and trim stay single-slot, reads go through."""

from __future__ import annotations

from livehub.broker.archive import CHUNK
from livehub.broker.base import Event
from tests.rediscluster.conftest import ClusterBrokers


def post(i: int) -> Event:
    return {"t": "msg", "mid": f"m{i}", "uid": "u1", "name": "Ann", "role": "participant",
            "text": f"post {i}", "ts": 1_239_000_000_000 + i}


async def test_archive_on_the_cluster(cluster_brokers: ClusterBrokers, room_prefix: str
                                      ) -> None:
    broker = await cluster_brokers(command_timeout=5.0)  # (a loaded CI machine)
    rooms = [f"{room_prefix}-{i}" for i in range(3)]  # (likely on different primaries)
    for room in rooms:
        for start in range(1, CHUNK + 101, 220):
            await broker.commit(room, [post(i) for i in range(start, min(CHUNK + 100,
                                                                          start + 219) + 1)])
    for room in rooms:
        before = await broker.read(room, 0)
        done = await broker.archive(room, keep=10)
        assert done is not None and (done.archived, done.trimmed, done.kept) == (CHUNK, CHUNK, 100)
        after = await broker.read(room, 0)
        assert after.complete and after.events == before.events
        assert (await broker.read(room, CHUNK - 5, limit=10)).events == before.events[
            CHUNK - 5:CHUNK + 5]
        again = await broker.archive(room, keep=10)
        assert again is not None and (again.archived, again.trimmed) == (0, 0)
