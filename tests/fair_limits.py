"""Fair limits as an attacker tries them (issue 20), against any list of server processes:
one in-memory process, or two sharing Redis. Each abuse is paired with an honest client
that is still served meanwhile."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from tests.support import Client, LivehubProcess, token

OTHER = "127.0.0.2"


def outcomes(answers: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in answers:
        key = "ok" if a["t"] == "ok" else a["code"]
        counts[key] = counts.get(key, 0) + 1
    return counts


async def burst(client: Client, frames: list[dict[str, Any]], timeout: float = 10.0
                ) -> list[dict[str, Any]]:
    """Send every frame at once, then collect each one's answer (in sending order)."""
    ids = []
    for i, frame in enumerate(frames):
        rid = f"b{id(frames)}-{i}"
        ids.append(rid)
        await client.send({**frame, "id": rid})
    got: dict[str, dict[str, Any]] = {}
    while len(got) < len(ids):
        ev = await client.recv(timeout)
        if ev.get("t") in ("ok", "error") and ev.get("id") in ids:
            got[ev["id"]] = ev
    return [got[rid] for rid in ids]


async def bursts(pairs: list[tuple[Client, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Bursts from several clients at the same moment; every answer."""
    results = await asyncio.gather(*(burst(c, frames) for c, frames in pairs))
    return [a for answers in results for a in answers]


async def connections(procs: list[LivehubProcess], room: str, n: int, **hello: Any
                      ) -> list[Client]:
    """``n`` connections of the same person, spread over the processes."""
    spread = itertools.cycle(procs)
    return [await Client.join(next(spread).ws_url, room, **hello) for _ in range(n)]


async def close(*clients: Client) -> None:
    for c in clients:
        await c.close()


async def one_person_one_budget(procs: list[LivehubProcess], room: str) -> None:
    """30 posts at once from one person over 3 connections (each within its own budget of
    20 per 10 s): exactly 20 are accepted, everywhere together."""
    me = token("participant", "Fast Typist", sub=f"typist-{room}")
    conns = await connections(procs, room, 3, token=me)
    honest = await Client.join(procs[-1].ws_url, room, token=token("participant", "Honest",
                                                                   sub=f"honest-{room}"))
    answers = await bursts([(c, [{"t": "post", "text": f"{i}"} for i in range(10)])
                            for c in conns])
    got = outcomes(answers)
    assert got == {"ok": 20, "rate_limited": 10}, got
    # A retry of an accepted post is answered from its idempotency key, uncounted.
    assert (await honest.request({"t": "post", "text": "I am fine"}))["t"] == "ok"
    await close(*conns, honest)


async def slow_mode_per_person(procs: list[LivehubProcess], room: str) -> None:
    """Posts sent at once from 8 connections of one person with slow mode on: exactly
    one is accepted."""
    mod = await Client.join(procs[0].ws_url, room, token=token("moderator", "Mo",
                                                               sub=f"mo-{room}"))
    assert (await mod.request({"t": "settings", "slow_mode": 30}))["t"] == "ok"
    me = token("participant", "Impatient", sub=f"impatient-{room}")
    conns = await connections(procs, room, 8, token=me)
    for c in conns:  # every process has applied the settings
        if c.welcome["room"]["settings"]["slow_mode"] != 30:
            await c.recv_until(lambda ev: ev.get("t") == "room")
    answers = await bursts([(c, [{"t": "post", "text": "me first"}]) for c in conns])
    got = outcomes(answers)
    assert got == {"ok": 1, "slow_mode": 7}, got
    # Another person has a clock of their own; staff are exempt.
    other = await Client.join(procs[-1].ws_url, room, token=token("participant", "Other",
                                                                  sub=f"other-{room}"))
    assert (await other.request({"t": "post", "text": "hello"}))["t"] == "ok"
    assert (await mod.request({"t": "post", "text": "staff"}))["t"] == "ok"
    assert (await mod.request({"t": "post", "text": "staff again"}))["t"] == "ok"
    await close(mod, other, *conns)


async def guest_votes_per_address(procs: list[LivehubProcess], room: str, cap: int) -> None:
    """Fresh guest names from one address vote one question up: only ``cap`` count."""
    mod = await Client.join(procs[0].ws_url, room, token=token("moderator", "Mo",
                                                               sub=f"mo-{room}"))
    qid = (await mod.request({"t": "ask", "text": "Which day for bins?"}))["qid"]
    spread = itertools.cycle(procs)
    guests = [await Client.join(next(spread).ws_url, room, name=f"Sock {i}")
              for i in range(cap + 2)]
    answers = [await g.request({"t": "vote", "qid": qid, "up": True}) for g in guests]
    got = outcomes(answers)
    assert got == {"ok": cap, "rate_limited": 2}, got
    # A withdrawn vote frees its place.
    assert (await guests[0].request({"t": "vote", "qid": qid, "up": False}))["t"] == "ok"
    assert (await guests[-1].request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    # Another address, and a signed-in person from this one, are not counted here.
    neighbour = await Client.join(procs[-1].ws_url, room, source=OTHER, name="Neighbour")
    member = await Client.join(procs[-1].ws_url, room,
                               token=token("participant", "Cllr", sub=f"cllr-{room}"))
    assert (await neighbour.request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    assert (await member.request({"t": "vote", "qid": qid, "up": True}))["t"] == "ok"
    votes = await member.recv_until(
        lambda ev: ev.get("t") == "votes" and ev["votes"] == cap + 2, timeout=5)
    assert votes["qid"] == qid
    await close(mod, neighbour, member, *guests)


async def guest_budget_per_address(procs: list[LivehubProcess], room: str, rate: int
                                   ) -> None:
    """Guests from one address share ``rate`` publishing requests per 10 s."""
    spread = itertools.cycle(procs)
    guests = [await Client.join(next(spread).ws_url, room, name=f"Flood {i}")
              for i in range(4)]
    per_guest = rate // 2
    answers = await bursts([(g, [{"t": "post", "text": f"flood {i}"}
                                 for i in range(per_guest)]) for g in guests])
    got = outcomes(answers)
    assert got == {"ok": rate, "rate_limited": 4 * per_guest - rate}, got
    neighbour = await Client.join(procs[-1].ws_url, room, source=OTHER, name="Neighbour")
    member = await Client.join(procs[-1].ws_url, room,
                               token=token("participant", "Cllr", sub=f"cllr2-{room}"))
    assert (await neighbour.request({"t": "post", "text": "hi"}))["t"] == "ok"
    assert (await member.request({"t": "post", "text": "hi"}))["t"] == "ok"
    await close(neighbour, member, *guests)
