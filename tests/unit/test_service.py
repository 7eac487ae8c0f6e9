"""livehub.service: the one request path (decide, checks, commit, answer), with
idempotency and metrics, on the memory broker (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from livehub import metrics, roomlog
from livehub import protocol as p
from livehub import room as core
from livehub.broker.base import BrokerUnavailable, Commit
from livehub.broker.memory import MemoryBroker
from livehub.budgets import Limits
from livehub.programme import Session
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import Role
from livehub.service import Call, RequestService

SESSION = Session(slug="svc", title="S", starts=None, ends=None, speakers=())
ALICE = core.Actor("u-alice", "Alice", Role.PARTICIPANT)
MOD = core.Actor("u-mod", "Mod", Role.MODERATOR)


def service(broker: MemoryBroker, **limits: Any) -> RequestService:
    return RequestService(broker, limits=Limits(**limits), max_text=100)


async def state_of(broker: MemoryBroker) -> core.RoomState:
    return roomlog.fold(SESSION, await roomlog.read_all(broker, SESSION.slug))


def requests(kind: str, outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "livehub_requests_total", {"type": kind, "outcome": outcome}) or 0.0


async def test_a_post_is_committed_and_answered_with_its_seq() -> None:
    broker = MemoryBroker()
    svc = service(broker)
    before = requests("post", "ok")
    answer = await svc.run(await state_of(broker),
                           Call("svc", ALICE, p.Post(text="hi", id="1"), idem="1"))
    assert answer.reply["seq"] == 1 and not answer.duplicate
    assert requests("post", "ok") == before + 1
    logged = (await broker.read("svc")).events
    assert [ev["mid"] for ev in logged] == [answer.reply["mid"]]


async def test_a_repeat_is_answered_again_from_memory_or_through_the_broker() -> None:
    broker = MemoryBroker()
    one, two = service(broker), service(broker)  # two processes, one broker
    call = Call("svc", ALICE, p.Post(text="hi", id="7"), idem="7")
    first = await one.run(await state_of(broker), call)
    again = await one.run(await state_of(broker), call)
    elsewhere = await two.run(await state_of(broker), call)
    assert again.reply == first.reply and again.duplicate
    assert elsewhere.reply == first.reply and elsewhere.duplicate
    assert (await broker.read("svc")).head == 1


async def test_a_repeat_refused_by_the_room_now_is_recalled() -> None:
    broker = MemoryBroker()
    svc = service(broker)
    call = Call("svc", ALICE, p.Post(text="hi", id="9"), idem="9")
    first = await svc.run(await state_of(broker), call)
    await svc.run(await state_of(broker), Call("svc", MOD, p.Mute(uid=ALICE.uid)))
    # Another process (nothing in its memory) gets the retry after the mute.
    retry = await service(broker).run(await state_of(broker), call)
    assert retry.reply == first.reply and retry.duplicate
    with pytest.raises(ProtocolError) as err:
        await svc.run(await state_of(broker), Call("svc", ALICE, p.Post(text="x", id="10"),
                                                   idem="10"))
    assert err.value.code == ErrorCode.MUTED


async def test_marks_budgets_and_the_metrics_label() -> None:
    broker = MemoryBroker()
    svc = service(broker, rate_limit=1)
    before = requests("announce", "ok")
    for i in range(3):  # unbudgeted: all three pass a budget of one
        call = Call("svc", MOD, p.Post(text=f"a{i}"), budgets=False,
                    marks={"announcement": True}, kind="announce")
        await svc.run(await state_of(broker), call)
    assert requests("announce", "ok") == before + 3
    assert all(ev["announcement"] for ev in (await broker.read("svc")).events)
    await svc.run(await state_of(broker), Call("svc", ALICE, p.Post(text="one")))
    with pytest.raises(ProtocolError) as err:
        await svc.run(await state_of(broker), Call("svc", ALICE, p.Post(text="two")))
    assert err.value.code == ErrorCode.RATE_LIMITED


class _Down(MemoryBroker):
    async def commit(self, room: str, events: list[dict[str, Any]], **kw: Any) -> Commit:
        raise BrokerUnavailable("down")


async def test_an_unreachable_broker_is_unavailable_and_nothing_stays_in_flight() -> None:
    svc = service(_Down())
    with pytest.raises(ProtocolError) as err:
        await svc.run(core.RoomState("svc"), Call("svc", ALICE, p.Post(text="hi")))
    assert err.value.code == ErrorCode.UNAVAILABLE
    assert svc.inflight == 0 and svc.idle.is_set()


async def test_shutdown_can_wait_for_requests_in_flight() -> None:
    gate = asyncio.Event()

    class Slow(MemoryBroker):
        async def commit(self, room: str, events: list[dict[str, Any]],
                         **kw: Any) -> Commit:
            await gate.wait()
            return await super().commit(room, events, **kw)

    svc = service(Slow())
    task = asyncio.create_task(svc.run(core.RoomState("svc"),
                                       Call("svc", ALICE, p.Post(text="hi"))))
    await asyncio.sleep(0)
    assert not svc.idle.is_set()
    gate.set()
    await task
    assert svc.idle.is_set()
