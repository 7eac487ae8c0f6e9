"""Badges and watchers through a real server: PROTOCOL.md "Badges and watchers"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from livehub.auth import mint, verify
from livehub.roles import Role
from tests.support import SECRET, Client, LivehubProcess, token

COUNCIL = "Eastmere District Council"


def badge_token(role: str, sub: str, affiliation: Any = COUNCIL) -> str:
    claims = {"sub": sub, "name": sub.title(), "role": role, "exp": 4_000_000_000,
              "affiliation": affiliation}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_affiliation_rides_on_me_msg_q_and_answer(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    cllr = await Client.join(rooms_server.ws_url, room, token=badge_token("speaker", "cllr"))
    ann = await Client.join(rooms_server.ws_url, room, token=token("participant", sub="ann"))
    assert cllr.welcome["me"]["affiliation"] == COUNCIL
    assert "affiliation" not in ann.welcome["me"]
    assert (await cllr.request({"t": "post", "text": "Hello"}))["t"] == "ok"
    msg = await ann.recv_until(lambda e: e["t"] == "msg")
    assert msg["affiliation"] == COUNCIL and msg["name"] == "Cllr"
    qid = (await cllr.request({"t": "ask", "text": "Named?"}))["qid"]
    q = await ann.recv_until(lambda e: e["t"] == "q")
    assert q["affiliation"] == COUNCIL
    anon = (await cllr.request({"t": "ask", "text": "Unnamed?", "anonymous": True}))["qid"]
    q = await ann.recv_until(lambda e: e["t"] == "q" and e["qid"] == anon)
    assert "affiliation" not in q and q["uid"] is None
    assert (await cllr.request({"t": "answer", "qid": qid, "text": "Yes."}))["t"] == "ok"
    answer = await ann.recv_until(lambda e: e["t"] == "answer")
    assert answer["affiliation"] == COUNCIL
    late = await Client.join(rooms_server.ws_url, room, token=token("participant", sub="late"))
    by_qid = {q["qid"]: q for q in late.welcome["questions"]}
    assert by_qid[qid]["affiliation"] == COUNCIL and "affiliation" not in by_qid[anon]
    assert late.welcome["history"][0]["affiliation"] == COUNCIL
    for c in (cllr, ann, late):
        await c.close()


async def test_guests_never_carry_a_badge(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    guest = await Client.join(rooms_server.ws_url, room, name="Resident Ann",
                              affiliation=COUNCIL)
    other = await Client.join(rooms_server.ws_url, room, token=token("participant", sub="o"))
    assert "affiliation" not in guest.welcome["me"]
    assert (await guest.request({"t": "post", "text": "hi", "affiliation": COUNCIL}))["t"] == "ok"
    msg = await other.recv_until(lambda e: e["t"] == "msg")
    assert "affiliation" not in msg and msg["guest"] is True
    # A guest token with an affiliation forged in (it cannot be signed without the
    # secret, but a server-made one is the only kind that says guest) carries none.
    forged = mint(SECRET, name="G", role=Role.PARTICIPANT, guest=True, affiliation=COUNCIL)
    g2 = await Client.join(rooms_server.ws_url, room, token=forged)
    assert "affiliation" not in g2.welcome["me"]
    for c in (guest, other, g2):
        await c.close()


@pytest.mark.parametrize("bad", ["", "x" * 81, "Two\nlines", "Tab\there", 42,
                                 "Council\u202e", ["list"]])
async def test_a_bad_affiliation_makes_a_bad_token(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str], bad: Any) -> None:
    room = fresh_room()
    c = await Client.connect(rooms_server.ws_url, room)
    await c.send({"t": "hello", "token": badge_token("participant", "x", bad)})
    err = await c.recv()
    assert err["t"] == "error" and err["code"] == "auth_failed"
    assert (await c.expect_close()).code == 4401


async def test_watchers_read_everything_publish_nothing_and_are_not_counted(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    speaker = await Client.join(rooms_server.ws_url, room, token=token("speaker", sub="jo"))
    pid = (await speaker.request({"t": "poll", "question": "Q", "options": ["a", "b"]}))["pid"]
    watcher = await Client.join(rooms_server.ws_url, room, watch=True)
    me = watcher.welcome["me"]
    assert me["role"] == "participant" and me["watch"] is True and "token" not in me
    assert watcher.welcome["online"] == 1  # the speaker; not the watcher
    assert [p["pid"] for p in watcher.welcome["polls"]] == [pid]
    # A moderator's token still watches as a participant.
    mod_watch = await Client.join(rooms_server.ws_url, room, token=token("moderator", sub="m"),
                                  watch=True)
    assert mod_watch.welcome["me"]["role"] == "participant"
    assert mod_watch.welcome["me"]["watch"] is True
    assert "moderation" not in mod_watch.welcome
    for frame in ({"t": "post", "text": "hi"}, {"t": "ask", "text": "q?"},
                  {"t": "ballot", "pid": pid, "choices": [0]},
                  {"t": "settings", "slow_mode": 5}):
        for c in (watcher, mod_watch):
            err = await c.request(frame)
            assert err["t"] == "error" and err["code"] == "forbidden", (frame, err)
    assert (await watcher.request({"t": "ping"}))["t"] == "ok"
    # Every event a participant gets.
    assert (await speaker.request({"t": "post", "text": "to all"}))["t"] == "ok"
    assert (await watcher.recv_until(lambda e: e["t"] == "msg"))["text"] == "to all"
    ann = await Client.join(rooms_server.ws_url, room, token=token("participant", sub="ann"))
    assert ann.welcome["online"] == 2
    await watcher.recv_until(lambda e: e["t"] == "presence" and e["online"] == 2, timeout=4)
    for c in (speaker, watcher, mod_watch, ann):
        await c.close()


async def test_watching_needs_a_room_that_admits_guests_or_a_token(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    mod = await Client.join(rooms_server.ws_url, room, token=token("moderator", sub="mo"))
    assert (await mod.request({"t": "settings", "guests": False}))["t"] == "ok"
    c = await Client.connect(rooms_server.ws_url, room)
    await c.send({"t": "hello", "watch": True})
    assert (await c.recv())["code"] == "auth_failed"
    assert (await c.expect_close()).code == 4401
    with_token = await Client.join(rooms_server.ws_url, room,
                                   token=token("participant", sub="p"), watch=True)
    assert with_token.welcome["me"]["watch"] is True
    for c in (mod, with_token):
        await c.close()


async def test_a_watcher_with_a_name_is_a_bad_frame(
        rooms_server: LivehubProcess, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    c = await Client.connect(rooms_server.ws_url, room)
    await c.send({"t": "hello", "watch": True, "name": "Ann"})
    err = await c.recv()
    assert err["t"] == "error" and err["code"] == "bad_frame"
    await c.send(json.dumps({"t": "hello", "watch": "yes"}))
    err = await c.recv()
    assert err["code"] == "bad_frame"
    await c.close()


def test_livehub_token_mints_an_affiliation_and_names_a_bad_one() -> None:
    env = {**os.environ, "LIVEHUB_SECRET": SECRET}
    cmd = [sys.executable, "-m", "livehub", "token", "--name", "Cllr Jo", "--role", "speaker"]
    out = subprocess.run([*cmd, "--affiliation", COUNCIL], env=env, capture_output=True,
                         text=True, check=True)
    assert verify(SECRET, out.stdout.strip()).affiliation == COUNCIL
    bad = subprocess.run([*cmd, "--affiliation", "x" * 81], env=env, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "--affiliation" in bad.stderr
    assert "Traceback" not in bad.stderr
