"""Retention on real Redis: archive, trim, read through, idempotence, interruption, lock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from livehub import retention
from livehub.broker.archive import CHUNK
from livehub.broker.base import BrokerUnavailable, Event
from livehub.broker.redis import RedisBroker
from livehub.programme import load_programme
from tests.broker.conftest import RedisBrokers

N = 2 * CHUNK + 345  # two full chunks and a partial one
KEEP = 100


def key(room: str, part: str, ns: str = "livehub") -> str:
    return f"{ns}:{{{room}}}:{part}"


def post(i: int) -> Event:
    return {"t": "msg", "mid": f"m{i}", "uid": "u1", "name": "Ann", "role": "participant",
            "text": f"post number {i} " + "words " * (i % 7), "ts": 1_239_000_000_000 + i}


async def fill(broker: RedisBroker, room: str, n: int = N) -> None:
    for start in range(1, n + 1, 250):
        await broker.commit(room, [post(i) for i in range(start, min(n, start + 249) + 1)])


async def test_archive_trims_and_reads_the_same(new_redis_broker: RedisBrokers, admin: Redis,
                                                room_prefix: str) -> None:
    broker = await new_redis_broker(command_timeout=5.0)
    room = f"{room_prefix}-a"
    await fill(broker, room)
    before = await broker.read(room, 0)
    assert before.complete and len(before.events) == N
    raw_len = await admin.memory_usage(key(room, "log"))

    planned = await broker.archive(room, keep=KEEP, dry_run=True)
    assert planned is not None and planned.archived == 2 * CHUNK
    assert await admin.xlen(key(room, "log")) == N
    assert not await admin.exists(key(room, "archive"))

    done = await broker.archive(room, keep=KEEP)
    assert done == planned
    # Trimmed to the last full chunk's end: the partial chunk stays (it is > KEEP).
    assert done.upto == 2 * CHUNK and done.trimmed == 2 * CHUNK and done.kept == N - 2 * CHUNK
    assert await admin.xlen(key(room, "log")) == N - 2 * CHUNK
    archive_size = await admin.memory_usage(key(room, "archive"))
    assert archive_size < raw_len / 3, (archive_size, raw_len)

    after = await broker.read(room, 0)
    assert after.complete and after.events == before.events and after.head == N
    # Any window reads the same, across the archive/stream seam and within the archive.
    for since, limit in ((0, 10), (995, 10), (1990, 50), (2 * CHUNK - 3, 7), (N - 5, None)):
        got = await broker.read(room, since, limit=limit)
        assert got.complete
        assert got.events == before.events[since:since + (limit or N)], (since, limit)

    # A second run does nothing; numbering goes on after the archived events.
    again = await broker.archive(room, keep=KEEP)
    assert again is not None and (again.archived, again.trimmed) == (0, 0)
    c = await broker.commit(room, [post(N + 1)])
    assert c.seq == N + 1 and c.epoch == before.epoch


async def test_a_renewed_epoch_keeps_its_archive(new_redis_broker: RedisBrokers,
                                                 room_prefix: str) -> None:
    """A log that lost its newest events keeps the rest under a new epoch: its archive too."""
    broker = await new_redis_broker(command_timeout=5.0)
    room = f"{room_prefix}-e"
    await fill(broker, room, CHUNK + 20)
    before = await broker.read(room, 0)
    await broker.archive(room, keep=5)
    epoch = await broker.renew_epoch(room, before.epoch)
    assert epoch != before.epoch
    after = await broker.read(room, 0)
    assert after.epoch == epoch and after.complete and after.events == before.events


async def test_archive_keeps_at_least_keep(new_redis_broker: RedisBrokers, room_prefix: str
                                           ) -> None:
    broker = await new_redis_broker(command_timeout=5.0)
    room = f"{room_prefix}-k"
    await fill(broker, room, CHUNK + 50)
    done = await broker.archive(room, keep=300)
    assert done is not None and done.archived == CHUNK
    assert done.kept == 300 and done.trimmed == CHUNK + 50 - 300
    assert (await broker.read(room, 0)).events == [
        {**post(i), "seq": i} for i in range(1, CHUNK + 51)]
    # A small room (no full chunk) is left alone.
    await fill(broker, f"{room}-small", 40)
    small = await broker.archive(f"{room}-small", keep=10)
    assert small is not None and (small.archived, small.trimmed, small.kept) == (0, 0, 40)


async def test_interrupted_archive_leaves_a_consistent_log(
        new_redis_broker: RedisBrokers, admin: Redis, room_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    broker = await new_redis_broker(command_timeout=5.0)
    room = f"{room_prefix}-i"
    await fill(broker, room)
    before = await broker.read(room, 0)

    async def killed(**_: object) -> None:
        raise RedisConnectionError("killed between archive and trim")

    real_trim = broker._trim_script  # a crash right there, between archive and trim
    monkeypatch.setattr(broker, "_trim_script", killed)
    with pytest.raises(BrokerUnavailable):
        await broker.archive(room, keep=KEEP)
    # Chunks were written, but nothing trimmed and nothing reads them yet.
    assert await admin.xlen(key(room, "log")) == N
    assert await admin.hget(key(room, "archive"), "upto") == b"0"
    assert (await broker.read(room, 0)).events == before.events

    monkeypatch.setattr(broker, "_trim_script", real_trim)
    await eventually_ready(broker)
    done = await broker.archive(room, keep=KEEP)
    assert done is not None and done.upto == 2 * CHUNK and done.trimmed == 2 * CHUNK
    assert (await broker.read(room, 0)).events == before.events


async def eventually_ready(broker: RedisBroker) -> None:
    from tests.broker.conftest import eventually

    await eventually(lambda: broker.ready, 15, "the broker answering again")


async def test_one_archiver_per_deployment(new_redis_broker: RedisBrokers, admin: Redis,
                                           room_prefix: str, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    ns = f"{room_prefix}ns"
    a = await new_redis_broker(namespace=ns, command_timeout=5.0)
    b = await new_redis_broker(namespace=ns, command_timeout=5.0)
    room_past, room_open = f"{room_prefix}-past", f"{room_prefix}-open"
    programme = tmp_path / "p.toml"
    programme.write_text(
        f'[conference]\ntitle = "T"\n\n[[session]]\nslug = "{room_past}"\ntitle = "Past"\n'
        'starts = 2009-04-06T09:00:00Z\nends = 2009-04-06T10:00:00Z\n\n'
        f'[[session]]\nslug = "{room_open}"\ntitle = "Open"\n')
    prog = load_programme(str(programme))
    await fill(a, room_past, CHUNK + 10)
    await fill(a, room_open, CHUNK + 10)
    try:
        assert await a.hold_lock(retention.LOCK, "someone-else", 30)
        assert await retention.run_once(b, prog, retain_after=86400, keep=5) is None
        await a.release_lock(retention.LOCK, "someone-else")
        done = await retention.run_once(b, prog, retain_after=86400, keep=5)
        assert done is not None and [d.room for d in done] == [room_past]
        assert done[0].archived == CHUNK
        # Not yet due at the session's end: nothing (and 0 means never).
        assert retention.due(prog, 86400, datetime(2009, 4, 6, 11, tzinfo=UTC)) == []
        assert retention.due(prog, 0, datetime(2030, 1, 1, tzinfo=UTC)) == []
    finally:
        async for k in admin.scan_iter(match=f"{ns}:*"):
            await admin.delete(k)
