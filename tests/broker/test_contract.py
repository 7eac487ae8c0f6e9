"""The broker contract: every backend (memory, redis) behaves the same."""

from __future__ import annotations

import asyncio
import random

import pytest

from livehub.broker.base import Event
from tests.broker.conftest import Backend, Recorder

pytestmark = pytest.mark.timeout(20)


def ev(i: int, **extra: object) -> Event:
    return {"t": "msg", "mid": f"m{i}", "text": f"post {i}", "ts": 1_700_000_000_000 + i, **extra}


async def test_commit_numbers_from_one_and_sets_seq(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    batch = [ev(1), ev(2)]
    c1 = await b.commit(room, batch)
    assert c1.seq == 2 and not c1.duplicate and c1.ref is None
    assert [e["seq"] for e in batch] == [1, 2]
    one = [ev(3)]
    c2 = await b.commit(room, one)
    assert c2.seq == 3 and one[0]["seq"] == 3
    # Rooms are numbered independently.
    other = [ev(1)]
    assert (await b.commit(f"{room_prefix}-b", other)).seq == 1


async def test_empty_commit_changes_nothing(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    await b.commit(room, [ev(1)])
    c = await b.commit(room, [])
    assert c.seq == 1
    assert (await b.read(room)).head == 1


async def test_read_after_returns_exactly_the_rest(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    for i in range(1, 6):
        await b.commit(room, [ev(i)])
    h = await b.read(room, after=2)
    assert [e["seq"] for e in h.events] == [3, 4, 5]
    assert [e["mid"] for e in h.events] == ["m3", "m4", "m5"]
    assert h.events[0]["text"] == "post 3" and h.events[0]["ts"] == 1_700_000_000_003
    assert h.head == 5 and h.complete
    everything = await b.read(room)
    assert [e["seq"] for e in everything.events] == [1, 2, 3, 4, 5] and everything.complete
    caught_up = await b.read(room, after=5)
    assert caught_up.events == [] and caught_up.complete and caught_up.head == 5
    limited = await b.read(room, after=1, limit=2)
    assert [e["seq"] for e in limited.events] == [2, 3] and limited.complete
    assert (await b.read(room, after=1, limit=0)).events == []


async def test_read_unknown_room(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    h = await b.read(f"{room_prefix}-nobody")
    assert h.head == 0 and h.events == [] and h.complete
    assert isinstance(h.epoch, str) and h.epoch  # welcome always has one
    # A position in a log that does not exist is not a position we can resume from.
    assert not (await b.read(f"{room_prefix}-nobody", after=3)).complete


async def test_epoch_stable_across_commits(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    before = (await b.read(room)).epoch
    epochs = {(await b.commit(room, [ev(i)])).epoch for i in range(5)}
    assert epochs == {before}
    assert (await b.read(room, after=2)).epoch == before


async def test_idempotency(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    rec = Recorder()
    await b.subscribe(room, rec)
    await b.commit(room, [ev(0)])
    first = await b.commit(room, [ev(1)], idem=("u1:req-1", "m1"))
    assert first == first.__class__(seq=2, epoch=first.epoch, ref="m1", duplicate=False)

    again = [ev(99)]
    dup = await b.commit(room, again, idem=("u1:req-1", "m99"))
    assert dup.duplicate and dup.ref == "m1" and dup.seq == 2 and dup.epoch == first.epoch
    assert "seq" not in again[0]  # nothing was numbered

    other = await b.commit(room, [ev(2)], idem=("u1:req-2", "m2"))
    assert not other.duplicate and other.seq == 3 and other.ref == "m2"

    h = await b.read(room)
    assert [e["mid"] for e in h.events] == ["m0", "m1", "m2"]
    # The duplicate was not published either: everything up to the last commit arrived once.
    await rec.wait_seq(room, 3)
    assert rec.seqs(room) == [1, 2, 3]
    assert [e["mid"] for e in rec.events[room]] == ["m0", "m1", "m2"]


async def test_idempotency_keys_are_per_room(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    c1 = await b.commit(f"{room_prefix}-a", [ev(1)], idem=("k", "r1"))
    c2 = await b.commit(f"{room_prefix}-b", [ev(1)], idem=("k", "r2"))
    assert not c1.duplicate and not c2.duplicate and c2.ref == "r2"


async def test_listener_receives_every_event_in_order(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-a"
    rec = Recorder()
    await b.subscribe(room, rec)
    rng = random.Random(7)
    n = 0
    for _ in range(20):
        batch = [ev(n + k) for k in range(rng.randint(1, 3))]
        n += len(batch)
        c = await b.commit(room, batch)
        assert c.seq == n
    await rec.wait_seq(room, n)
    assert rec.seqs(room) == list(range(1, n + 1))
    assert [e["mid"] for e in rec.events[room]] == [f"m{i}" for i in range(n)]
    assert set(rec.epochs[room]) == {c.epoch}


async def test_unsubscribe_stops_delivery(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room, sentinel = f"{room_prefix}-a", f"{room_prefix}-b"
    rec = Recorder()
    await b.subscribe(room, rec)
    await b.subscribe(sentinel, rec)
    await b.commit(room, [ev(1)])
    await rec.wait_seq(room, 1)
    await b.unsubscribe(room)
    await b.commit(room, [ev(2)])
    # One connection delivers in publish order: once the later sentinel is here, the
    # unsubscribed room's event would have been too.
    await b.commit(sentinel, [ev(3)])
    await rec.wait_seq(sentinel, 1)
    assert rec.seqs(room) == [1]
    await b.unsubscribe(room)  # twice is harmless


async def test_online_counts(backend: Backend, room_prefix: str) -> None:
    a = await backend.new()
    room, empty = f"{room_prefix}-a", f"{room_prefix}-b"
    await a.set_online(room, 2)
    assert await a.online([room, empty]) == {room: 2, empty: 0}
    await a.set_online(room, 3)
    assert await a.online([room]) == {room: 3}
    if backend.shared:
        # Two processes' counts add up. (Two MemoryBrokers are two unrelated worlds,
        # one per process, so this part means nothing for the memory backend.)
        b = await backend.new()
        await b.set_online(room, 4)
        assert await a.online([room]) == {room: 7}
        assert await b.online([room]) == {room: 7}
        await b.set_online(room, 0)
        assert await a.online([room]) == {room: 3}
    await a.set_online(room, 0)
    assert await a.online([room]) == {room: 0}


async def test_trimmed_log_is_incomplete(backend: Backend, room_prefix: str) -> None:
    b = await backend.new(max_log=5)
    room = f"{room_prefix}-a"
    for i in range(1, 13):
        await b.commit(room, [ev(i)])
    h = await b.read(room)
    assert not h.complete and h.head == 12
    assert [e["seq"] for e in h.events] == [8, 9, 10, 11, 12]
    assert not (await b.read(room, after=6)).complete
    h7 = await b.read(room, after=7)
    assert h7.complete and [e["seq"] for e in h7.events] == [8, 9, 10, 11, 12]
    assert (await b.read(room, after=12)).complete
    assert not (await b.read(room, after=2, limit=0)).complete


async def test_concurrent_commits_are_gap_free(backend: Backend, room_prefix: str) -> None:
    room = f"{room_prefix}-a"
    a = await backend.new()
    # Two processes committing to one room is the real race; with the memory backend
    # two instances are two separate rooms, so there the race is between tasks only.
    brokers = [a, await backend.new()] if backend.shared else [a]
    recorders = [Recorder() for _ in brokers]
    for broker, rec in zip(brokers, recorders, strict=True):
        await broker.subscribe(room, rec)
    rng = random.Random(11)
    batches: list[list[Event]] = []
    for i in range(120):
        batches.append([ev(i * 10 + k) for k in range(rng.randint(1, 3))])

    results = await asyncio.gather(
        *(brokers[i % len(brokers)].commit(room, batch) for i, batch in enumerate(batches))
    )
    total = sum(len(batch) for batch in batches)
    seqs = sorted(e["seq"] for batch in batches for e in batch)
    assert seqs == list(range(1, total + 1))
    # Each batch got consecutive numbers, and its Commit says where it ended.
    for batch, res in zip(batches, results, strict=True):
        got = [e["seq"] for e in batch]
        assert got == list(range(got[0], got[0] + len(batch)))
        assert res.seq == got[-1]
    for rec in recorders:
        await rec.wait_seq(room, total)
        assert rec.seqs(room) == list(range(1, total + 1))
    h = await a.read(room)
    assert [e["seq"] for e in h.events] == list(range(1, total + 1)) and h.head == total
