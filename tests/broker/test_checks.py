"""Limits decided in the commit (livehub.broker.base.Check): every backend the same.

On Redis two broker instances stand for two server processes: they share the budgets.
"""

from __future__ import annotations

import asyncio

import pytest

from livehub.broker.base import Check
from tests.broker.conftest import Backend
from tests.broker.test_contract import ev

pytestmark = pytest.mark.timeout(20)


async def test_rate_budget_is_shared_and_a_refusal_changes_nothing(
        backend: Backend, room_prefix: str) -> None:
    a = await backend.new()
    b = await backend.new() if backend.shared else a
    room = f"{room_prefix}-rate"
    rate = (Check("rate", "person:u1", 3, 10_000, label="person"),)
    results = await asyncio.gather(*((a if i % 2 else b).commit(room, [ev(i)], checks=rate)
                                     for i in range(6)))
    accepted = [c for c in results if c.refused is None]
    refused = [c for c in results if c.refused is not None]
    assert len(accepted) == 3 and len(refused) == 3
    assert all(c.refused == rate[0] for c in refused)
    # Nothing was logged for the refused ones.
    assert (await a.read(room)).head == 3
    # Another person's budget is their own.
    assert (await b.commit(room, [ev(9)], checks=(
        Check("rate", "person:u2", 3, 10_000),))).refused is None


async def test_rate_budget_slides(backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-slide"
    rate = (Check("rate", "person:u1", 2, 300),)
    assert (await b.commit(room, [ev(1)], checks=rate)).refused is None
    assert (await b.commit(room, [ev(2)], checks=rate)).refused is None
    assert (await b.commit(room, [ev(3)], checks=rate)).refused is not None
    await asyncio.sleep(0.35)
    assert (await b.commit(room, [ev(4)], checks=rate)).refused is None


async def test_gap_lets_one_through_and_says_how_long_to_wait(
        backend: Backend, room_prefix: str) -> None:
    a = await backend.new()
    b = await backend.new() if backend.shared else a
    room = f"{room_prefix}-gap"
    gap = (Check("gap", "slow:u1", window_ms=2000, code="slow_mode"),)
    results = await asyncio.gather(*((a if i % 2 else b).commit(room, [ev(i)], checks=gap)
                                     for i in range(8)))
    assert sum(c.refused is None for c in results) == 1
    assert all(0 < c.retry_ms <= 2000 for c in results if c.refused is not None)


async def test_cap_counts_distinct_members_and_uncap_frees_a_place(
        backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-cap"

    def vote(uid: str, up: bool = True) -> tuple[Check, ...]:
        return (Check("cap" if up else "uncap", "gvotes:q1:addr", 2, member=uid),)

    assert (await b.commit(room, [ev(1)], checks=vote("g1"))).refused is None
    assert (await b.commit(room, [ev(2)], checks=vote("g2"))).refused is None
    assert (await b.commit(room, [ev(3)], checks=vote("g3"))).refused is not None
    # One already counted passes again (say, a vote after a race).
    assert (await b.commit(room, [ev(4)], checks=vote("g1"))).refused is None
    assert (await b.commit(room, [ev(5)], checks=vote("g1", up=False))).refused is None
    assert (await b.commit(room, [ev(6)], checks=vote("g3"))).refused is None


async def test_a_repeated_idempotency_key_is_answered_before_any_check(
        backend: Backend, room_prefix: str) -> None:
    b = await backend.new()
    room = f"{room_prefix}-idem"
    rate = (Check("rate", "person:u1", 1, 10_000),)
    first = await b.commit(room, [ev(1)], idem=("u1\x00r1", "m1"), checks=rate)
    again = await b.commit(room, [ev(1)], idem=("u1\x00r1", "m1"), checks=rate)
    assert first.refused is None and again.duplicate and again.seq == first.seq


async def test_take_counts_outside_commits(backend: Backend, room_prefix: str) -> None:
    a = await backend.new()
    b = await backend.new() if backend.shared else a
    room = f"{room_prefix}-take"
    got = await asyncio.gather(*((a if i % 2 else b).take(room, "gnames:x", 3, 60_000)
                                 for i in range(5)))
    assert sorted(got) == [False, False, True, True, True]
