"""The foundation through a real server process: transport, codecs, errors, limits."""

from __future__ import annotations

import asyncio
import json

import httpx
import jwt
import msgpack
import pytest
import websockets

from tests.support import SECRET, Client, LivehubProcess, token

CODECS = ["json", "msgpack"]


async def guest(server: LivehubProcess, name: str = "Ann", room: str = "lobby",
                codec: str = "json", **hello: object) -> Client:
    return await Client.join(server.ws_url, room, codec, name=name, **hello)


@pytest.mark.parametrize("codec", CODECS)
async def test_two_clients_see_posts_in_one_seq_order(server: LivehubProcess,
                                                      codec: str) -> None:
    other = "msgpack" if codec == "json" else "json"
    a = await guest(server, "Ann", codec=codec)
    b = await guest(server, "Bob", codec=other)
    sent = []
    for i in range(5):
        for c, who in ((a, "a"), (b, "b")):
            await c.send({"t": "post", "text": f"{who}{i}", "id": f"{who}{i}"})
            sent.append(f"{who}{i}")
    seen: dict[str, list[tuple[int, str]]] = {"a": [], "b": []}
    for c, who in ((a, "a"), (b, "b")):
        while len(seen[who]) < len(sent):
            ev = await c.recv()
            if ev["t"] == "msg":
                seen[who].append((ev["seq"], ev["text"]))
    assert seen["a"] == seen["b"]
    seqs = [s for s, _ in seen["a"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(sent)))
    assert sorted(t for _, t in seen["a"]) == sorted(sent)
    await a.close()
    await b.close()


async def test_ok_carries_mid_and_seq_and_matches_the_event(server: LivehubProcess) -> None:
    a = await guest(server)
    ok = await a.request({"t": "post", "text": "hello <b>world</b>"})
    assert ok["t"] == "ok" and isinstance(ok["mid"], str) and isinstance(ok["seq"], int)
    msg = await a.recv_until(lambda e: e["t"] == "msg" and e["mid"] == ok["mid"])
    assert msg["seq"] == ok["seq"]
    assert msg["text"] == "hello <b>world</b>"  # delivered exactly as sent
    assert msg["name"] == "Ann" and msg["guest"] is True and msg["role"] == "participant"
    assert isinstance(msg["ts"], int)
    await a.close()


async def test_late_joiner_gets_history_oldest_first(server: LivehubProcess) -> None:
    a = await guest(server, room="lobby-2")
    texts = [f"early {i}" for i in range(3)]
    for text in texts:
        assert (await a.request({"t": "post", "text": text}))["t"] == "ok"
    late = await guest(server, "Late", room="lobby-2")
    history = late.welcome["history"]
    assert [m["text"] for m in history][-3:] == texts
    assert [m["seq"] for m in history] == sorted(m["seq"] for m in history)
    w = late.welcome
    assert w["me"]["name"] == "Late" and w["me"]["role"] == "participant"
    assert w["room"]["id"] == "lobby-2" and w["room"]["state"] == "open"
    assert w["room"]["settings"] == {"slow_mode": 0, "guests": True, "premoderate": False}
    assert w["seq"] == history[-1]["seq"] and isinstance(w["epoch"], str) and w["epoch"]
    assert w["online"] >= 2 and w["pinned"] == [] and w["questions"] == []
    await a.close()
    await late.close()


async def test_same_post_id_publishes_once(server: LivehubProcess) -> None:
    a = await guest(server)
    b = await guest(server, "Bob")
    first = await a.request({"t": "post", "text": "only once", "id": "same-id"})
    again = await a.request({"t": "post", "text": "only once", "id": "same-id"})
    assert first["t"] == again["t"] == "ok"
    assert (first["mid"], first["seq"]) == (again["mid"], again["seq"])
    marker = await a.request({"t": "post", "text": "marker"})
    got = []
    while True:
        ev = await b.recv()
        if ev["t"] == "msg":
            got.append(ev["text"])
            if ev["mid"] == marker["mid"]:
                break
    assert got.count("only once") == 1
    # The id is per user: someone else may use the same id.
    other = await b.request({"t": "post", "text": "mine", "id": "same-id"})
    assert other["t"] == "ok" and other["mid"] != first["mid"]
    await a.close()
    await b.close()


BAD_FRAMES: list[tuple[str, object, str]] = [
    ("not a map", [1, 2, 3], "bad_frame"),
    ("a string", "post", "bad_frame"),
    ("no t", {"text": "x"}, "bad_frame"),
    ("t not a string", {"t": 5}, "bad_frame"),
    ("unknown t", {"t": "shout", "text": "x"}, "unknown_type"),
    ("text not a string", {"t": "post", "text": 5}, "bad_frame"),
    ("missing text", {"t": "post"}, "bad_frame"),
    ("bool for qid", {"t": "vote", "qid": True, "up": True}, "bad_frame"),
    ("up not a bool", {"t": "vote", "qid": "q1", "up": "yes"}, "bad_frame"),
    ("id not a string", {"t": "post", "text": "x", "id": 7}, "bad_frame"),
    ("id empty", {"t": "post", "text": "x", "id": ""}, "bad_frame"),
    ("id too long", {"t": "post", "text": "x", "id": "x" * 65}, "bad_frame"),
    ("control char", {"t": "post", "text": "a\x00b"}, "bad_frame"),
    ("del with neither", {"t": "del"}, "bad_frame"),
    ("bad state", {"t": "qstate", "qid": "q", "state": "sideways"}, "bad_frame"),
    ("text too long", {"t": "post", "text": "é" * 2001}, "too_long"),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("label", "frame", "code"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
async def test_bad_frames_get_their_error_and_the_connection_stays_usable(
        server: LivehubProcess, codec: str, label: str, frame: object, code: str) -> None:
    a = await guest(server, codec=codec)
    await a.send(frame)
    err = await a.recv_until(lambda e: e["t"] == "error")
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    rid = frame.get("id") if isinstance(frame, dict) else None
    if isinstance(rid, str) and 0 < len(rid) <= 64:
        assert err["id"] == rid
    ok = await a.request({"t": "post", "text": "still here"})
    assert ok["t"] == "ok"
    await a.close()


@pytest.mark.parametrize(("codec", "payload"), [
    ("msgpack", b"\xc1\xc1\xc1"),
    ("msgpack", b"\x92\x01"),  # truncated
    ("json", "{not json"),
    ("json", b"\xff\xfe{}"),
    ("msgpack", '{"t": "post"}'),  # a text frame on the msgpack codec
    ("json", "[" * 5000 + "]" * 5000),
])
async def test_undecodable_frames_are_bad_frames(server: LivehubProcess, codec: str,
                                                 payload: bytes | str) -> None:
    a = await guest(server, codec=codec)
    await a.send_raw(payload)
    err = await a.recv_until(lambda e: e["t"] == "error")
    assert err["code"] == "bad_frame"
    assert (await a.request({"t": "post", "text": "alive"}))["t"] == "ok"
    await a.close()


async def test_text_of_exactly_the_limit_is_accepted(server: LivehubProcess) -> None:
    a = await guest(server)
    ok = await a.request({"t": "post", "text": "🙂" * 2000})
    assert ok["t"] == "ok"
    await a.close()


async def test_oversized_frame_closes_1009(server: LivehubProcess) -> None:
    a = await guest(server)
    await a.send({"t": "post", "text": "x" * (65 * 1024)})
    closed = await a.expect_close()
    assert closed.code == 1009


async def test_unknown_room_closes_4404(server: LivehubProcess) -> None:
    for room in ("no-such-room", "Bad_Slug"):
        c = await Client.connect(server.ws_url, room)
        assert (await c.expect_close()).code == 4404


async def test_disallowed_origin_is_refused(server: LivehubProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await Client.connect(server.ws_url, "lobby", origin="https://evil.example")
    assert info.value.response.status_code == 403
    # The server's own origin is allowed.
    c = await Client.connect(server.ws_url, "lobby", origin=server.url)
    await c.hello(name="Own origin")
    await c.close()


async def test_first_frame_must_be_hello(server: LivehubProcess) -> None:
    c = await Client.connect(server.ws_url, "lobby")
    await c.send({"t": "post", "text": "hi"})
    assert (await c.expect_close()).code == 1008


async def test_no_first_frame_within_deadline_closes_1008(server: LivehubProcess) -> None:
    c = await Client.connect(server.ws_url, "lobby")
    closed = await c.expect_close(timeout=5)  # the fixture sets a 1 s deadline
    assert closed.code == 1008


async def test_guest_name_out_of_bounds_gets_bad_frame_and_no_welcome(
        server: LivehubProcess) -> None:
    for name in ("", "x" * 51):
        c = await Client.connect(server.ws_url, "lobby")
        await c.send({"t": "hello", "name": name})
        ev = await c.recv()
        assert ev["t"] == "error" and ev["code"] == "bad_frame"
        await c.close()


async def test_rate_limit_refuses_the_21st_request(server: LivehubProcess) -> None:
    a = await guest(server)
    for i in range(20):
        await a.send({"t": "ping", "id": f"p{i}"})
    await a.send({"t": "ping", "id": "p20"})
    answers = [await a.recv_until(lambda e: e["t"] in ("ok", "error")) for _ in range(21)]
    assert [x["t"] for x in answers[:20]] == ["ok"] * 20
    assert answers[20]["code"] == "rate_limited" and answers[20]["id"] == "p20"
    await a.close()


async def test_subprotocol_negotiation(server: LivehubProcess) -> None:
    both = await Client.connect(server.ws_url, "lobby", "msgpack",
                                subprotocols=["livehub.v1.json", "livehub.v1.msgpack"])
    assert both.ws.subprotocol == "livehub.v1.msgpack"
    await both.send({"t": "hello", "name": "Mp"})
    raw = await both.ws.recv()
    assert isinstance(raw, bytes) and msgpack.unpackb(raw)["t"] == "welcome"
    await both.close()
    none = await Client.connect(server.ws_url, "lobby", "json", subprotocols=[])
    assert none.ws.subprotocol is None
    await none.send({"t": "hello", "name": "Js"})
    raw = await none.ws.recv()
    assert isinstance(raw, str) and json.loads(raw)["t"] == "welcome"
    # No per-message compression unless configured.
    assert none.ws.response is not None
    assert "Sec-WebSocket-Extensions" not in none.ws.response.headers
    await none.close()


async def test_token_sign_in_and_bad_tokens(server: LivehubProcess) -> None:
    c = await Client.join(server.ws_url, "members", token=token("moderator", "Mo", sub="mo-1"))
    me = c.welcome["me"]
    assert (me["uid"], me["name"], me["role"]) == ("mo-1", "Mo", "moderator")
    assert "guest" not in me and "token" not in me
    await c.close()
    other_secret = "another-secret-that-is-long-enough-for-hs256"
    unknown_role = jwt.encode({"sub": "x", "name": "X", "role": "admin", "exp": 2**40},
                              SECRET, algorithm="HS256")
    for bad in ("garbage", token("participant", secret=other_secret), unknown_role,
                token("participant", ttl=-10), token("participant", rooms=["lobby"])):
        c = await Client.connect(server.ws_url, "members")
        await c.send({"t": "hello", "token": bad})
        err = await c.recv()
        assert err["t"] == "error" and err["code"] == "auth_failed"
        assert (await c.expect_close()).code == 4401
    # No guests in "members": a name alone is refused the same way.
    c = await Client.connect(server.ws_url, "members")
    await c.send({"t": "hello", "name": "Guest"})
    assert (await c.recv())["code"] == "auth_failed"
    assert (await c.expect_close()).code == 4401


async def test_http_health_ready_and_rooms(server: LivehubProcess) -> None:
    a = await guest(server, room="slow")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["broker"] == "memory"
        rooms = (await http.get("/api/rooms")).json()
        assert rooms["conference"]["title"] == "Test Conference"
        by_id = {r["id"]: r for r in rooms["rooms"]}
        assert by_id["slow"]["online"] >= 1
        assert by_id["slow"]["settings"]["slow_mode"] == 2
        assert by_id["lobby"]["starts"].startswith("2009-04-06T09:00")
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    await a.close()


async def test_presence_reaches_the_room(server: LivehubProcess) -> None:
    a = await guest(server, room="premod")
    b = await guest(server, "Bob", room="premod")
    assert b.welcome["online"] >= 2
    await b.close()
    ev = await a.recv_until(lambda e: e["t"] == "presence", timeout=5)
    assert isinstance(ev["online"], int)
    await a.close()


async def test_slow_mode_refuses_quick_second_post(server: LivehubProcess) -> None:
    a = await guest(server, room="slow")
    assert (await a.request({"t": "post", "text": "one"}))["t"] == "ok"
    refused = await a.request({"t": "post", "text": "two"})
    assert refused["t"] == "error" and refused["code"] == "slow_mode"
    await asyncio.sleep(2.1)
    assert (await a.request({"t": "post", "text": "three"}))["t"] == "ok"
    await a.close()


async def test_a_guest_comes_back_as_the_same_guest_with_its_token(
        server: LivehubProcess) -> None:
    first = await guest(server, "Returning Rita")
    me = first.welcome["me"]
    assert me["guest"] is True and isinstance(me["token"], str)
    ok = await first.request({"t": "post", "text": "before", "id": "rita-1"})
    await first.close()
    back = await Client.join(server.ws_url, "lobby", token=me["token"])
    assert back.welcome["me"]["uid"] == me["uid"] and back.welcome["me"]["guest"] is True
    # The same id from the same guest is the same post, not a second one.
    again = await back.request({"t": "post", "text": "before", "id": "rita-1"})
    assert (again["mid"], again["seq"]) == (ok["mid"], ok["seq"])
    await back.close()
    # A guest token is for its own room, and only where guests are admitted.
    for room in ("lobby-2", "members"):
        c = await Client.connect(server.ws_url, room)
        await c.send({"t": "hello", "token": me["token"]})
        assert (await c.recv())["code"] == "auth_failed"
        assert (await c.expect_close()).code == 4401
