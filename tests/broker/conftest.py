"""Fixtures for the broker tests: backends, unique rooms, a recording listener.

Redis tests use the shared server at ``LIVEHUB_TEST_REDIS_URL`` (default
127.0.0.1:6379) with room names unique to each test, and delete only their own
keys; anything that breaks Redis on purpose uses a private ``redis-server``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from livehub.broker.base import Broker, Event
from livehub.broker.memory import MemoryBroker
from livehub.broker.redis import RedisBroker
from tests.redis_server import RedisServer

REDIS_URL = os.environ.get("LIVEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Short timers so failure-mode tests take seconds, not the production defaults.
FAST: dict[str, Any] = {
    "command_timeout": 1.0,
    "connect_timeout": 0.5,
    "health_interval": 0.2,
    "health_timeout": 0.4,
    "backoff_base": 0.02,
    "backoff_cap": 0.3,
}

async def eventually(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``pred`` until true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.01)


async def eventually_async(
    pred: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "",
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.02)


class Recorder:
    """A listener that keeps what it is given, per room."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = {}
        self.epochs: dict[str, list[str]] = {}
        self.resyncs: list[str] = []

    def on_events(self, room: str, epoch: str, events: list[Event]) -> None:
        self.events.setdefault(room, []).extend(events)
        self.epochs.setdefault(room, []).append(epoch)

    def on_resync(self, room: str) -> None:
        self.resyncs.append(room)

    def seqs(self, room: str) -> list[int]:
        return [ev["seq"] for ev in self.events.get(room, [])]

    async def wait_seq(self, room: str, seq: int, timeout: float = 5.0) -> None:
        await eventually(lambda: seq in self.seqs(room), timeout, f"seq {seq} in {room}")


@pytest.fixture
def room_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def _redis_or_skip(url: str) -> Redis:
    client = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"no Redis at {url}: {exc}")
    return client


async def _delete_room_keys(client: Redis, room_prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"livehub:{{{room_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def admin(room_prefix: str) -> AsyncIterator[Redis]:
    """A plain client to the shared Redis; deletes this test's keys afterwards."""
    client = await _redis_or_skip(REDIS_URL)
    yield client
    await _delete_room_keys(client, room_prefix)
    await client.aclose()


class RedisBrokers:
    """Starts RedisBrokers with fast timers (default: the shared server); closes them all."""

    def __init__(self) -> None:
        self.made: list[RedisBroker] = []

    async def __call__(self, url: str = REDIS_URL, **kwargs: Any) -> RedisBroker:
        broker = RedisBroker(url, **{**FAST, **kwargs})
        self.made.append(broker)
        await broker.start()
        return broker

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.made))


@pytest.fixture
async def new_redis_broker(admin: Redis) -> AsyncIterator[RedisBrokers]:
    brokers = RedisBrokers()
    yield brokers
    await brokers.close()


class Backend:
    """One backend under the contract: ``new()`` makes an instance.

    ``shared`` says whether two instances share rooms (Redis: two processes on one
    Redis); two MemoryBrokers are two separate worlds, by design.
    """

    def __init__(self, kind: str, new: Callable[..., Awaitable[Broker]], shared: bool) -> None:
        self.kind = kind
        self.new = new
        self.shared = shared


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, room_prefix: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        made: list[Broker] = []

        async def new_memory(max_log: int | None = None) -> Broker:
            broker = MemoryBroker(max_log=max_log or 100_000)
            await broker.start()
            made.append(broker)
            return broker

        yield Backend("memory", new_memory, shared=False)
        for b in made:
            await b.close()
        return
    client = await _redis_or_skip(REDIS_URL)
    brokers = RedisBrokers()

    async def new_redis(max_log: int | None = None) -> Broker:
        return await brokers(max_log=max_log)

    try:
        yield Backend("redis", new_redis, shared=True)
    finally:
        await brokers.close()
        await _delete_room_keys(client, room_prefix)
        await client.aclose()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, without persistence.

    Request it before ``new_redis_broker`` so the brokers are closed first.
    """
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_servers() -> Iterator[Callable[..., RedisServer]]:
    """Make private redis-servers (not started); all are removed at teardown."""
    made: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.cleanup()
