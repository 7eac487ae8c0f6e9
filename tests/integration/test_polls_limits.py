"""Polls under the fair limits and read-only guests (PROTOCOL.md "Fair limits",
"Safeguarding and bounded cost"), through a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import write_programme
from tests.support import Client, LivehubProcess, token

CAP = 3


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    tmp = tmp_path_factory.mktemp("poll-limits")
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(write_programme(tmp / "p.toml", 4)),
                               "LIVEHUB_VOTE_WINDOW": "0.1",
                               "LIVEHUB_GUEST_VOTES_PER_ADDRESS": str(CAP)},
                          log_path=tmp / "livehub.log").start()
    yield proc
    proc.terminate()


async def test_guest_ballots_per_address_are_capped_and_a_changed_ballot_is_no_new_one(
        srv: LivehubProcess) -> None:
    room = "room-000"
    speaker = await Client.join(srv.ws_url, room, token=token("speaker", "Jo", sub="jo"))
    pid = (await speaker.request({"t": "poll", "question": "Q?",
                                  "options": ["a", "b"]}))["pid"]
    guests = [await Client.join(srv.ws_url, room, name=f"Sock {i}") for i in range(CAP + 2)]
    answers = [await g.request({"t": "ballot", "pid": pid, "choices": [0]}) for g in guests]
    got = [a["t"] if a["t"] == "ok" else a["code"] for a in answers]
    assert got == ["ok"] * CAP + ["rate_limited"] * 2, answers
    assert "in this poll" in answers[-1]["message"]
    # A counted guest changes their ballot: not a new one.
    assert (await guests[0].request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    # A signed-in person from the same address is never counted here.
    member = await Client.join(srv.ws_url, room, token=token("participant", "Cllr", sub="c"))
    assert (await member.request({"t": "ballot", "pid": pid, "choices": [1]}))["t"] == "ok"
    await speaker.recv_until(lambda e: e["t"] == "tally" and e["counts"] == [2, 2])
    # Another poll has its own places.
    other = (await speaker.request({"t": "poll", "question": "R?",
                                    "options": ["a", "b"]}))["pid"]
    assert (await guests[-1].request({"t": "ballot", "pid": other, "choices": [0]}))["t"] == "ok"
    for c in (speaker, member, *guests):
        await c.close()


async def test_guests_stop_voting_when_the_room_stops_admitting_guests(
        srv: LivehubProcess) -> None:
    room = "room-001"
    mod = await Client.join(srv.ws_url, room, token=token("moderator", "Mo", sub="mo"))
    guest = await Client.join(srv.ws_url, room, name="Ann")
    watcher = await Client.join(srv.ws_url, room, watch=True)
    pid = (await mod.request({"t": "poll", "question": "Q?", "options": ["a", "b"]}))["pid"]
    assert (await mod.request({"t": "settings", "guests": False}))["t"] == "ok"
    err = await guest.request({"t": "ballot", "pid": pid, "choices": [0]})
    assert err["t"] == "error" and err["code"] == "forbidden"
    # The watcher that joined before still reads: it sees the poll close.
    assert (await mod.request({"t": "pollstate", "pid": pid, "state": "closed"}))["t"] == "ok"
    ev = await watcher.recv_until(lambda e: e["t"] == "pollstate")
    assert ev["state"] == "closed"
    for c in (mod, guest, watcher):
        await c.close()
