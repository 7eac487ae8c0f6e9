"""Broker backends: ``memory`` (one process, the default) and ``redis``."""

from __future__ import annotations

from livehub.broker.base import Broker, BrokerUnavailable, Commit, Event, History, Listener
from livehub.broker.memory import MemoryBroker

__all__ = ["Broker", "BrokerUnavailable", "Commit", "Event", "History", "Listener",
           "MemoryBroker", "make_broker"]


class BrokerConfigError(ValueError):
    """The broker settings cannot be used."""


def make_broker(redis_url: str | None, *, max_log: int) -> Broker:
    """The memory broker without a Redis URL (the Redis broker lands separately)."""
    if redis_url is None:
        return MemoryBroker(max_log=max_log)
    raise BrokerConfigError("this build has only the in-memory broker; unset the Redis URL")
