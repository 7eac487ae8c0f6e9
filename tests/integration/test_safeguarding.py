"""Safeguarding through a real server, tried as an attacker would (issue 13).

Anonymity holds on every path a participant or speaker can watch, and in the Markdown
transcript; banned guests stay out of the room from their address; names are one
line; guests turned away become read-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Client, Closed, LivehubProcess, token

PROGRAMME = str(Path(__file__).parent.parent / "data" / "safeguarding.toml")
ASKER_NAME = "Priya Whistleblower"
ASKER_UID = "asker-uid-7"
OTHER = "127.0.0.2"  # a second client address on loopback


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    log = tmp_path_factory.mktemp("safeguarding") / "livehub.log"
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": PROGRAMME, "LIVEHUB_VOTE_WINDOW": "0.1",
                               "LIVEHUB_GUEST_NAMES_PER_HOUR": "3"},
                          log_path=log).start()
    yield proc
    proc.terminate()


async def settle(*clients: Client, wait: float = 0.3) -> None:
    """Let events in flight arrive: read each client until it has been quiet a while."""
    for c in clients:
        with pytest.raises(TimeoutError):
            while True:
                await c.recv_until(lambda ev: False, timeout=wait)


class Watcher:
    """A client that keeps every frame it is sent, as raw JSON text too."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.frames: list[dict[str, Any]] = [client.welcome]

    async def collect(self, wait: float = 0.4) -> None:
        while True:
            try:
                self.frames.append(await self.client.recv(wait))
            except TimeoutError:
                return

    def text(self) -> str:
        return json.dumps(self.frames, ensure_ascii=False)


def about(frames: list[dict[str, Any]], qid: str) -> list[dict[str, Any]]:
    """Every frame (and every question inside a welcome) that concerns question ``qid``."""
    out = [f for f in frames if f.get("qid") == qid]
    for f in frames:
        out.extend(q for q in f.get("questions", []) if q.get("qid") == qid)
        out.extend(e for e in f.get("history", []) if e.get("qid") == qid)
    return out


async def test_anonymous_asker_never_named_to_participants_or_speakers(
        srv: LivehubProcess) -> None:
    room = "anon"
    mod = await Client.join(srv.ws_url, room, token=token("moderator", "Mo", sub="mo-1"))
    asker = await Client.join(srv.ws_url, room,
                              token=token("participant", ASKER_NAME, sub=ASKER_UID))
    watchers = [
        Watcher(await Client.join(srv.ws_url, room, token=token("participant", "Pat",
                                                                  sub="pat-1"))),
        Watcher(await Client.join(srv.ws_url, room, token=token("speaker", "Sam",
                                                                  sub="sam-1"))),
        Watcher(await Client.join(srv.ws_url, room, name="Guest Gail")),
    ]
    ask = await asker.request({"t": "ask", "text": "Is the depot safe?", "anonymous": True})
    qid = ask["qid"]
    # Every moderation act a moderator can take on the asker of an anonymous question.
    for frame in ({"t": "qstate", "qid": qid, "state": "open"},
                  {"t": "vote", "qid": qid, "up": True},
                  {"t": "qstate", "qid": qid, "state": "answering"},
                  {"t": "answer", "qid": qid, "text": "We are checking."},
                  {"t": "mute", "uid": ASKER_UID, "seconds": 60},
                  {"t": "unmute", "uid": ASKER_UID},
                  {"t": "mute", "qid": qid},
                  {"t": "unmute", "uid": ASKER_UID},
                  {"t": "ban", "qid": qid},
                  {"t": "unban", "uid": ASKER_UID},
                  {"t": "del", "qid": qid, "mute": 30},
                  {"t": "ban", "uid": ASKER_UID}):
        answer = await mod.request(frame)
        assert answer["t"] == "ok", (frame, answer)
    for w in watchers:
        await w.collect()
    # ...and people arriving late, or resuming, see no more.
    late = Watcher(await Client.join(srv.ws_url, room, since=0,
                                     token=token("speaker", "Late Sam", sub="sam-2")))
    watchers.append(late)
    for w in watchers:
        assert ASKER_NAME not in w.text(), w.frames
        for f in about(w.frames, qid):
            assert f.get("uid") != ASKER_UID and f.get("name") != ASKER_NAME, f
        # A mute through the question itself reaches no one but moderators.
        events = [*w.frames, *w.frames[0].get("history", [])]
        mutes = [f for f in events if f.get("t") in ("mute", "unmute")]
        assert len(mutes) == 2, mutes  # the mute by uid and its lifting, not the private pair
        assert all(set(f) <= {"t", "seq", "ts", "uid", "until"} for f in mutes), mutes
    assert not [f for w in watchers for f in w.frames if f.get("t") in ("ban", "unban")]

    # The Markdown transcript, the one published as minutes, never names the asker...
    headers = {"Authorization": f"Bearer {token('moderator', 'Mo', sub='mo-1')}"}
    async with httpx.AsyncClient(base_url=srv.url, headers=headers) as http:
        md = (await http.get(f"/api/rooms/{room}/transcript?format=md")).text
        full = (await http.get(f"/api/rooms/{room}/transcript?format=json")).text
    assert ASKER_NAME not in md and ASKER_UID not in md, md
    assert "a participant" in md
    # The public record, once the room is closed, names no one who asked anonymously.
    assert (await mod.request({"t": "settings", "state": "closed"}))["t"] == "ok"
    async with httpx.AsyncClient(base_url=srv.url) as http:
        record = await http.get(f"/record/{room}")
    assert record.status_code == 200
    assert ASKER_NAME not in record.text and ASKER_UID not in record.text
    # ...while the JSON record for staff is complete.
    assert ASKER_NAME in full
    for c in [mod, asker, *(w.client for w in watchers)]:
        await c.close()


async def test_mute_through_an_anonymous_question_stays_between_moderators(
        srv: LivehubProcess) -> None:
    room = "anon-2"
    mod = await Client.join(srv.ws_url, room, token=token("moderator", "Mo", sub="mo-2"))
    other_mod = await Client.join(srv.ws_url, room, token=token("moderator", "Max",
                                                                sub="mo-3"))
    asker = await Client.join(srv.ws_url, room,
                              token=token("participant", ASKER_NAME, sub="asker-2"))
    pat = Watcher(await Client.join(srv.ws_url, room, token=token("participant", "Pat",
                                                                    sub="pat-2")))
    qid = (await asker.request({"t": "ask", "text": "?", "anonymous": True}))["qid"]
    assert (await mod.request({"t": "mute", "qid": qid}))["t"] == "ok"
    # The muted asker is muted all the same.
    refused = await asker.request({"t": "post", "text": "still here?"})
    assert refused["code"] == "muted"
    seen = await other_mod.recv_until(lambda ev: ev.get("t") == "mute")
    assert seen["uid"] == "asker-2" and seen["name"] == ASKER_NAME
    await pat.collect()
    assert not [f for f in pat.frames if f.get("t") == "mute"], pat.frames
    # Lifting it stays private too.
    assert (await mod.request({"t": "unmute", "uid": "asker-2"}))["t"] == "ok"
    await other_mod.recv_until(lambda ev: ev.get("t") == "unmute")
    await pat.collect()
    assert not [f for f in pat.frames if f.get("t") in ("mute", "unmute")], pat.frames
    assert (await asker.request({"t": "post", "text": "back"}))["t"] == "ok"
    for c in (mod, other_mod, asker, pat.client):
        await c.close()


async def refused_hello(srv: LivehubProcess, room: str, source: str | None = None,
                        **hello: Any) -> tuple[list[dict[str, Any]], Closed]:
    c = await Client.connect(srv.ws_url, room, source=source)
    await c.send({"t": "hello", **hello})
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frames.append(await c.recv(5))
        except Closed as closed:
            assert not [f for f in frames if f.get("t") == "welcome"], frames
            return frames, closed


async def test_banned_guest_cannot_walk_back_in_under_a_new_name(srv: LivehubProcess) -> None:
    room = "guestban"
    mod = await Client.join(srv.ws_url, room, token=token("moderator", "Mo", sub="mo-4"))
    troll = await Client.join(srv.ws_url, room, name="Troll")
    troll_token = troll.welcome["me"]["token"]
    await troll.request({"t": "post", "text": "spam"})
    assert (await mod.request({"t": "ban", "uid": troll.welcome["me"]["uid"]}))["t"] == "ok"
    assert (await troll.expect_close()).code == 4403

    # A new name from the same address: refused, 4403.
    frames, closed = await refused_hello(srv, room, name="Totally New Person")
    assert closed.code == 4403 and frames[0]["code"] == "banned"
    # The old guest token: refused too.
    _, closed = await refused_hello(srv, room, token=troll_token)
    assert closed.code == 4403
    # A neighbour from another address, and a signed-in person from the same one: welcome.
    neighbour = await Client.join(srv.ws_url, room, source=OTHER, name="Neighbour")
    member = await Client.join(srv.ws_url, room,
                               token=token("participant", "Cllr Member", sub="member-1"))
    assert (await neighbour.request({"t": "post", "text": "hi"}))["t"] == "ok"
    assert (await member.request({"t": "post", "text": "hi"}))["t"] == "ok"
    # Other rooms are not affected.
    elsewhere = await Client.join(srv.ws_url, "names", name="Troll Elsewhere")
    # Lifting the ban lets guests from that address in again.
    assert (await mod.request({"t": "unban", "uid": troll.welcome["me"]["uid"]}))["t"] == "ok"
    back = await Client.join(srv.ws_url, room, name="Reformed")
    for c in (mod, neighbour, member, elsewhere, back):
        await c.close()


async def test_new_guest_names_per_address_are_capped(srv: LivehubProcess) -> None:
    room = "gnames"  # the server allows 3 new guest names per address per room per hour
    guests = [await Client.join(srv.ws_url, room, name=f"Guest {i}") for i in range(3)]
    frames, closed = await refused_hello(srv, room, name="Guest 4")
    assert frames[0]["code"] == "rate_limited" and closed.code == 1008
    # A returning guest keeps its identity, another address and signed-in people join.
    again = await Client.join(srv.ws_url, room, token=guests[0].welcome["me"]["token"])
    assert again.welcome["me"]["uid"] == guests[0].welcome["me"]["uid"]
    other = await Client.join(srv.ws_url, room, source=OTHER, name="Guest from elsewhere")
    member = await Client.join(srv.ws_url, room, token=token("participant", "M", sub="m-9"))
    for c in (*guests, again, other, member):
        await c.close()


@pytest.mark.parametrize("char", ["\r", "\n", "\t", "\u202e", "\u202a", "\u2066", "\u2069"],
                         ids=lambda c: f"U+{ord(c):04X}")
async def test_names_are_one_line(srv: LivehubProcess, char: str) -> None:
    # From an address of its own: this server allows few new guest names per address.
    c = await Client.connect(srv.ws_url, "names", source=f"127.0.1.{ord(char) % 250 + 1}")
    await c.send({"t": "hello", "name": f"Ann{char}Smith", "id": "h1"})
    refused = await c.recv()
    assert refused["t"] == "error" and refused["code"] == "bad_frame", refused
    assert refused["id"] == "h1"
    # No welcome: the client may try again with a name that is one line.
    welcome = await c.hello(name="Ann Smith")
    assert welcome["me"]["name"] == "Ann Smith"
    await c.close()
    bad_token = token("participant", f"Cllr{char}Forged", sub="forger")
    frames, closed = await refused_hello(srv, "names", token=bad_token)
    assert frames[0]["code"] == "auth_failed" and closed.code == 4401


async def test_guests_become_read_only_when_guests_are_turned_away(
        srv: LivehubProcess) -> None:
    room = "readonly"
    mod = await Client.join(srv.ws_url, room, token=token("moderator", "Mo", sub="mo-5"))
    guest = await Client.join(srv.ws_url, room, name="Early Guest")
    qid = (await mod.request({"t": "ask", "text": "a question"}))["qid"]
    assert (await mod.request({"t": "settings", "guests": False}))["t"] == "ok"
    await guest.recv_until(lambda ev: ev.get("t") == "room")
    for frame in ({"t": "post", "text": "still?"}, {"t": "ask", "text": "q?"},
                  {"t": "vote", "qid": qid, "up": True}):
        answer = await guest.request(frame)
        assert answer["t"] == "error" and answer["code"] == "forbidden", answer
    # It still reads the room.
    await mod.request({"t": "post", "text": "for everyone"})
    seen = await guest.recv_until(lambda ev: ev.get("t") == "msg")
    assert seen["text"] == "for everyone"
    assert (await mod.request({"t": "settings", "guests": True}))["t"] == "ok"
    await guest.recv_until(lambda ev: ev.get("t") == "room")
    assert (await guest.request({"t": "post", "text": "back"}))["t"] == "ok"
    for c in (mod, guest):
        await c.close()

