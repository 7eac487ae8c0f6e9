"""Bounded cost through a real server (issue 14): replay window, welcome size and
question count, send queues in bytes, idempotency keys, summaries and 503s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import write_programme
from tests.support import Client, LivehubProcess, token

MAX_REPLAY = 50
MAX_TEXT = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    tmp = tmp_path_factory.mktemp("bounds")
    proc = LivehubProcess(env={
        "LIVEHUB_PROGRAMME": str(write_programme(tmp / "programme.toml", rooms=20)),
        "LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_MAX_REPLAY": str(MAX_REPLAY),
        "LIVEHUB_MAX_TEXT": str(MAX_TEXT), "LIVEHUB_MAX_FRAME": str(256 * 1024),
        "LIVEHUB_VOTE_WINDOW": "0",
    }, log_path=tmp / "livehub.log").start()
    yield proc
    proc.terminate()


_rooms = iter(f"room-{i:03d}" for i in range(20))


@pytest.fixture
def room() -> str:
    return next(_rooms)


async def join(server: LivehubProcess, room: str, role: str = "participant",
               sub: str = "ann", **hello: Any) -> Client:
    return await Client.join(server.ws_url, room, token=token(role, sub.title(), sub=sub),
                             **hello)


_bursts = 0


async def burst(client: Client, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every frame at once; their answers, in order (events are dropped)."""
    global _bursts
    _bursts += 1
    ids = [f"b{_bursts}-{i}" for i in range(len(frames))]
    for rid, frame in zip(ids, frames, strict=True):
        await client.send({**frame, "id": rid})
    answers: dict[str, dict[str, Any]] = {}
    while len(answers) < len(ids):
        ev = await client.recv(10)
        if ev.get("t") in ("ok", "error") and ev.get("id") in ids:
            answers[ev["id"]] = ev
    return [answers[rid] for rid in ids]


async def raw_welcome(server: LivehubProcess, room: str, **hello: Any
                      ) -> tuple[int, dict[str, Any]]:
    """The welcome's size on the wire (JSON, UTF-8) and the welcome."""
    client = await Client.connect(server.ws_url, room)
    await client.send({"t": "hello", "token": token("participant", "Late", sub="late"),
                       **hello})
    data = await asyncio.wait_for(client.ws.recv(), 10)
    await client.close()
    assert isinstance(data, str)
    first = data.split("\n", 1)[0]  # coalesced frames are one map a line
    welcome = json.loads(first)
    assert welcome["t"] == "welcome"
    return len(first.encode()), welcome


async def test_replay_is_bounded_by_max_replay(server: LivehubProcess, room: str) -> None:
    poster = await join(server, room)
    answers = await burst(poster, [{"t": "post", "text": f"m{i}"} for i in range(120)])
    assert all(a["t"] == "ok" for a in answers)
    head = answers[-1]["seq"]
    epoch = poster.welcome["epoch"]

    # Within the window: every event after `since`, recovered.
    near = await join(server, room, sub="near", since=head - MAX_REPLAY, epoch=epoch)
    assert near.welcome["recovered"] is True
    assert [e["seq"] for e in near.welcome["history"]] == list(
        range(head - MAX_REPLAY + 1, head + 1))

    # Further back (since 0, or one past the window): the plain window, not recovered.
    for since in (0, head - MAX_REPLAY - 1):
        far = await join(server, room, sub="far", since=since, epoch=epoch)
        assert far.welcome["recovered"] is False
        assert [e["text"] for e in far.welcome["history"]] == [f"m{i}" for i in range(20, 120)]
        await far.close()

    # Another epoch: not recovered, even for a `since` inside the window.
    other = await join(server, room, sub="other", since=head - 1, epoch="not-this-one")
    assert other.welcome["recovered"] is False and len(other.welcome["history"]) == 100
    for c in (poster, near, other):
        await c.close()


async def test_welcome_carries_at_most_200_questions_stage_first(
        server: LivehubProcess, room: str) -> None:
    asker = await join(server, room)
    answers = await burst(asker, [{"t": "ask", "text": f"q{i}"} for i in range(230)])
    qids = [a["qid"] for a in answers]
    # Votes: q5 gets 2, q7 gets 1; the last one asked goes on stage with none.
    voters = [await join(server, room, sub=f"v{i}") for i in range(2)]
    for v in voters:
        assert (await v.request({"t": "vote", "qid": qids[5], "up": True}))["t"] == "ok"
    assert (await voters[0].request({"t": "vote", "qid": qids[7], "up": True}))["t"] == "ok"
    mod = await join(server, room, "moderator", "mod")
    staged = await mod.request({"t": "qstate", "qid": qids[-1], "state": "answering"})
    assert staged["t"] == "ok"

    late = await join(server, room, sub="v0")
    shown = late.welcome["questions"]
    assert len(shown) == 200
    assert [q["qid"] for q in shown[:3]] == [qids[-1], qids[5], qids[7]]
    assert shown[0]["state"] == "answering"
    # Then by votes (all 0 now), oldest first: q0, q1, ... with 5 and 7 already placed.
    rest = [q for i, q in enumerate(qids[:-1]) if i not in (5, 7)]
    assert [q["qid"] for q in shown[3:]] == rest[:197]
    assert set(late.welcome["me"]["votes"]) == {qids[5], qids[7]}
    for c in (asker, *voters, mod, late):
        await c.close()


async def test_welcome_is_never_over_one_mib(server: LivehubProcess, room: str) -> None:
    big = "€" * (MAX_TEXT - 10)  # about 60,000 bytes of UTF-8 each
    poster = await join(server, room, "moderator", "mod")
    posts = await burst(poster, [{"t": "post", "text": f"{i}{big}"} for i in range(60)])
    assert posts[0]["t"] == "ok", posts[0]
    mids = [a["mid"] for a in posts]
    asks = await burst(poster, [{"t": "ask", "text": f"{i}{big}"} for i in range(30)])
    assert asks[0]["t"] == "ok", asks[0]
    pins = await burst(poster, [{"t": "pin", "mid": mid} for mid in mids[-25:]])
    assert all(a["t"] == "ok" for a in posts + asks + pins)
    staged = await poster.request({"t": "qstate", "qid": asks[-1]["qid"],
                                   "state": "answering"})
    assert staged["t"] == "ok"
    head = staged["seq"]

    for hello in ({}, {"since": 0}, {"since": head - 40}):
        size, welcome = await raw_welcome(server, room, **hello)
        assert size <= 1024 * 1024, size
        # Cut in the documented order: oldest history first, then the lowest-ranked
        # questions; the question on stage stays; the newest post stays.
        assert welcome.get("recovered") in (None, False)
        assert welcome["history"] and welcome["history"][-1]["mid"] == mids[-1]
        assert welcome["questions"] and welcome["questions"][0]["qid"] == asks[-1]["qid"]
    await poster.close()


def test_docs_name_the_bounds() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for name in ("LIVEHUB_MAX_REPLAY", "1 MiB", "200 questions"):
        assert name in docs, name



# --- summaries, idempotency keys and send queues in bytes ------------------------------


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    """Small byte and key bounds, no keepalive (so the queue bound alone closes)."""
    tmp = tmp_path_factory.mktemp("tight")
    proc = LivehubProcess(env={
        "LIVEHUB_PROGRAMME": str(write_programme(tmp / "programme.toml", rooms=5)),
        "LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_MAX_IDEM_KEYS": "100",
        "LIVEHUB_SEND_QUEUE": "100000", "LIVEHUB_SEND_QUEUE_BYTES": str(64 * 1024),
        "LIVEHUB_PING_INTERVAL": "0", "LIVEHUB_MAX_TEXT": "8000",
        "LIVEHUB_MAX_LOG_BYTES": str(64 * 1024),
    }, log_path=tmp / "livehub.log").start()
    yield proc
    proc.terminate()


async def test_api_rooms_reads_summaries(tight: LivehubProcess) -> None:
    mod = await join(tight, "room-000", "moderator", "mod")
    await burst(mod, [{"t": "post", "text": f"p{i}"} for i in range(7)]
                + [{"t": "ask", "text": f"q{i}"} for i in range(3)])
    assert (await mod.request({"t": "settings", "state": "closed", "slow_mode": 5}))["t"] == "ok"
    async with httpx.AsyncClient(base_url=tight.url) as http:
        body = (await http.get("/api/rooms")).json()
    rooms = {r["id"]: r for r in body["rooms"]}
    assert rooms["room-000"]["counts"] == {"posts": 7, "questions": 3}
    assert rooms["room-000"]["state"] == "closed"
    assert rooms["room-000"]["settings"]["slow_mode"] == 5
    assert rooms["room-001"]["counts"] == {"posts": 0, "questions": 0}
    assert rooms["room-001"]["state"] == "open"
    await mod.close()


async def test_idempotency_keys_are_bounded_in_number(tight: LivehubProcess) -> None:
    poster = await join(tight, "room-001", sub="idem")
    first = await burst(poster, [{"t": "post", "text": f"i{i}"} for i in range(150)])
    ids = [f"b{_bursts}-{i}" for i in range(150)]
    # The newest 100 keys are remembered: a retry gets the first answer.
    again = await poster.request({"t": "post", "text": "i149", "id": ids[149]})
    assert again["mid"] == first[149]["mid"]
    # The oldest are forgotten (LIVEHUB_MAX_IDEM_KEYS=100): a retry that late is new.
    late = await poster.request({"t": "post", "text": "i0", "id": ids[0]})
    assert late["t"] == "ok" and late["mid"] != first[0]["mid"]
    await poster.close()


async def test_send_queue_is_bounded_in_bytes(tight: LivehubProcess) -> None:
    from tests.hardening.rawws import OP_CLOSE, OP_TEXT, RawWebSocket

    slow = await RawWebSocket.connect(tight.port, "/ws/room-002", rcvbuf=2048, limit=1024)
    await slow.send_frame(OP_TEXT, json.dumps({"t": "hello", "name": "Snail"}).encode())
    poster = await join(tight, "room-002", sub="fast")
    pad = "x" * 7000
    # Far fewer frames than LIVEHUB_SEND_QUEUE, far more bytes than the 64 KiB bound
    # (and than the socket buffers take), in bursts the poster reads.
    for k in range(300):
        answers = await burst(poster, [{"t": "post", "text": f"{k}-{i}{pad}"} for i in range(4)])
        assert all(a["t"] == "ok" for a in answers)
    close, _ = await slow.read_until_close(timeout=30)
    assert close is not None and close.opcode == OP_CLOSE
    assert close.close_code == 1013 and "send queue" in close.close_reason
    assert (await poster.request({"t": "post", "text": "still here"}))["t"] == "ok"
    await poster.close()
    slow.abort()


async def test_memory_log_is_bounded_in_bytes(tight: LivehubProcess) -> None:
    poster = await join(tight, "room-003", sub="big")
    answers: list[dict[str, Any]] = []
    for k in range(0, 30, 3):  # a few at a time: this server's send queues are small too
        answers += await burst(poster, [{"t": "post", "text": f"{i}" + "z" * 7000}
                                        for i in range(k, k + 3)])
    assert all(a["t"] == "ok" for a in answers)
    auth = {"Authorization": f"Bearer {token('moderator', 'Mod', sub='mod')}"}
    async with httpx.AsyncClient(base_url=tight.url) as http:
        body = (await http.get("/api/rooms/room-003/transcript?format=json",
                               headers=auth)).json()
    # 30 posts of 7 kB do not fit in 64 KiB: the oldest are gone, and the record says so.
    assert body["complete"] is False
    kept = [ev for ev in body["events"] if ev["t"] == "msg"]
    assert 5 <= len(kept) <= 9 and kept[-1]["seq"] == answers[-1]["seq"]
    await poster.close()
