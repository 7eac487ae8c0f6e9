"""Brokers: a log per room, sequence numbers and fan-out (see :mod:`livehub.broker.base`)."""

from __future__ import annotations

from livehub.broker.base import Broker, BrokerUnavailable, Commit, Event, History, Listener
from livehub.broker.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Commit",
    "Event",
    "History",
    "Listener",
    "MemoryBroker",
    "make_broker",
]


def make_broker(redis_url: str | None, *, max_log: int, redis_max_log: int | None = None,
                namespace: str = "livehub", max_log_bytes: int = 64 * 1024 * 1024,
                max_idem: int = 100_000) -> Broker:
    """The embedded broker without a Redis URL, else the Redis one (imported only then);
    a ``redis+cluster://`` URL gives the Redis Cluster broker.

    The memory broker keeps ``max_log`` events per room; Redis keeps every event
    (the complete record) unless ``redis_max_log`` says otherwise.
    """
    if redis_url is None:
        return MemoryBroker(max_log=max_log, max_log_bytes=max_log_bytes, max_idem=max_idem)
    if redis_url.startswith("redis+cluster://"):
        from livehub.broker.cluster import ClusterBroker

        return ClusterBroker(redis_url, max_log=redis_max_log, namespace=namespace)
    from livehub.broker.redis import RedisBroker

    return RedisBroker(redis_url, max_log=redis_max_log, namespace=namespace)
