"""kill -9 of one server process: its people move to the other, nothing acknowledged is lost,
and its share of the online count goes away on its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest

from tests.cluster.conftest import (
    Cluster,
    Member,
    assert_same_gap_free_stream,
    close_all,
    eventually_async,
    online_in,
)
from tests.support import Closed, LivehubProcess

pytestmark = pytest.mark.timeout(60)

HEARTBEAT_TTL = 10.0  # RedisBroker's default; no setting changes it for `livehub serve`


async def post_all(m: Member, ids: list[str], procs: list[LivehubProcess],
                   moves: list[tuple[str, bool]]) -> None:
    """Send every post in ``ids`` until each is acknowledged, one every 10 ms.

    When the connection drops, resume on the next process with ``since`` and resend
    what was not acknowledged, with the same ids.
    """
    home = 0
    while True:
        todo = [i for i in ids if i not in m.answers]
        if not todo:
            return

        async def send(todo: list[str] = todo) -> None:
            for rid in todo:
                await m.send({"t": "post", "text": f"post {rid}", "id": rid})
                await asyncio.sleep(0.01)

        sender = asyncio.create_task(send())
        try:
            await m.pump(lambda: all(i in m.answers for i in ids), 20, "every answer")
        except Closed:
            home += 1
            welcome = await m.join(procs[home % len(procs)])
            moves.append((m.sub, welcome["recovered"]))
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender


async def test_kill9_while_posting(make_cluster: Callable[..., Cluster],
                                   fresh_room: Callable[[], str]) -> None:
    cl = make_cluster()
    p1, p2 = cl.procs
    room = fresh_room()
    victims = [Member(room, f"victim{i}") for i in range(2)]  # on process 1
    others = [Member(room, f"other{i}") for i in range(2)]  # on process 2
    for m in victims:
        await m.join(p1)
    for m in others:
        await m.join(p2)
    n = 40
    ids = {m.sub: [f"{m.sub}-{i}" for i in range(n)] for m in [*victims, *others]}
    moves: list[tuple[str, bool]] = []
    tasks = [asyncio.create_task(post_all(m, ids[m.sub], [p1, p2] if m in victims else [p2],
                                          moves))
             for m in [*victims, *others]]

    def acked(m: Member) -> int:
        return sum(1 for i in ids[m.sub] if i in m.answers)

    deadline = time.monotonic() + 10
    while min(acked(m) for m in victims) < 8:
        assert time.monotonic() < deadline, "posting did not start"
        await asyncio.sleep(0.005)
    cl.kill9(0)  # mid-burst, with posts in flight on process 1
    acked_at_kill = sum(acked(m) for m in victims)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)

    everyone = [*victims, *others]
    assert sorted(moves) == [(m.sub, True) for m in victims]  # each resumed, recovered
    answers = [m.answers[i] for m in everyone for i in ids[m.sub]]
    assert all(a["t"] == "ok" for a in answers), [a for a in answers if a["t"] != "ok"][:3]
    last = max(a["seq"] for a in answers)
    await asyncio.gather(*(m.catch_up(last) for m in everyone))
    # Every post appears exactly once for everyone (retries were not published again),
    # in one gap-free order.
    assert last == 4 * n
    assert_same_gap_free_stream(everyone, 1, last)
    for m in everyone:
        mids = [ev["mid"] for ev in m.msgs()]
        assert len(mids) == len(set(mids)) == 4 * n
        assert set(mids) == {a["mid"] for a in answers}
    assert 0 < acked_at_kill < 2 * n
    await close_all(everyone)


async def test_online_counts_across_processes_and_after_a_crash(
        make_cluster: Callable[..., Cluster], fresh_room: Callable[[], str]) -> None:
    cl = make_cluster()
    p1, p2 = cl.procs
    room = fresh_room()
    on1 = [Member(room, f"one{i}") for i in range(2)]
    on2 = [Member(room, f"two{i}") for i in range(3)]
    assert (await on1[0].join(p1))["online"] == 1
    assert (await on2[0].join(p2))["online"] == 2
    assert (await on1[1].join(p1))["online"] == 3
    assert (await on2[1].join(p2))["online"] == 4
    assert (await on2[2].join(p2))["online"] == 5
    assert await online_in(p1, room) == 5
    assert await online_in(p2, room) == 5
    await on1[0].pump(lambda: 5 in on1[0].presence, 5, "presence 5")

    cl.kill9(0)  # no goodbye: only the heartbeat's expiry can tell
    # Bounded by the heartbeat's TTL plus slack for a loaded machine.
    took = await eventually_async(lambda: _online_is(p2, room, 3), HEARTBEAT_TTL + 8,
                                  "process 1's people to leave the count", interval=0.1)
    print(f"\ncount healed {took:.1f}s after kill -9 (heartbeat TTL {HEARTBEAT_TTL:g}s)")
    await on2[0].pump(lambda: bool(on2[0].presence) and on2[0].presence[-1] == 3, 3,
                      "presence 3")
    late = Member(room, "late")
    assert (await late.join(p2))["online"] == 4
    await close_all([*on1, *on2, late])


async def _online_is(proc: LivehubProcess, room: str, n: int) -> bool:
    return await online_in(proc, room) == n
