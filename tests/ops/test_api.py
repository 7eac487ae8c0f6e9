"""The organisers' HTTP API through a real server: auth errors, announcements, bodies.

Rooms used here: lobby-2 (announcements) and premod (errors only).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ops.helpers import bearer
from tests.support import Client, LivehubProcess, token

TRANSCRIPT = "/api/rooms/{room}/transcript"
ANNOUNCE = "/api/rooms/{room}/announce"
RELOAD = "/api/programme/reload"


def call(server: LivehubProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=10, **kw)


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    for word in words:
        assert word in body["message"], body
    return body


ENDPOINTS = [("GET", TRANSCRIPT.format(room="premod")),
             ("POST", ANNOUNCE.format(room="premod")), ("POST", RELOAD)]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_missing_or_bad_bearer_token_is_401(ops: LivehubProcess, method: str, path: str
                                            ) -> None:
    body = {"json": {"text": "hi"}} if method == "POST" else {}
    r = call(ops, method, path, **body)
    assert_error(r, 401, "Bearer")
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = call(ops, method, path, headers={"Authorization": "Basic dXNlcjpwdw=="}, **body)
    assert_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = token("moderator", secret="not-the-server-secret-but-long-enough-32b")
    r = call(ops, method, path, headers={"Authorization": f"Bearer {wrong}"}, **body)
    assert_error(r, 401, "bad token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = call(ops, method, path, headers=bearer(ttl=-60), **body)
    assert_error(r, 401, "expired")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("role", ["participant", "speaker"])
def test_a_token_without_the_moderator_role_is_403(ops: LivehubProcess, method: str, path: str,
                                                   role: str) -> None:
    body = {"json": {"text": "hi"}} if method == "POST" else {}
    assert_error(call(ops, method, path, headers=bearer(role), **body), 403, "moderator")


def test_a_token_for_other_rooms_is_403(ops: LivehubProcess) -> None:
    only_lobby2 = bearer(rooms=["lobby-2"])
    assert_error(call(ops, "GET", TRANSCRIPT.format(room="premod"), headers=only_lobby2),
                 403, "premod")
    assert_error(call(ops, "POST", ANNOUNCE.format(room="premod"), headers=only_lobby2,
                      json={"text": "hi"}), 403, "premod")
    assert call(ops, "GET", TRANSCRIPT.format(room="lobby-2"),
                headers=only_lobby2).status_code == 200
    # Reloading the whole programme needs a token for every room.
    assert_error(call(ops, "POST", RELOAD, headers=only_lobby2), 403, "room restriction")


@pytest.mark.parametrize("room", ["no-such-room", "Not_A_Slug"])
def test_unknown_room_is_404(ops: LivehubProcess, room: str) -> None:
    assert_error(call(ops, "GET", TRANSCRIPT.format(room=room), headers=bearer()), 404, room)
    assert_error(call(ops, "POST", ANNOUNCE.format(room=room), headers=bearer(),
                      json={"text": "hi"}), 404, room)


def test_unknown_transcript_format_is_400(ops: LivehubProcess) -> None:
    r = call(ops, "GET", TRANSCRIPT.format(room="premod") + "?format=pdf", headers=bearer())
    assert_error(r, 400, "md, csv, json", "pdf")


BAD_BODIES = [
    (b"not json", 400, "JSON"),
    (b'{"text": "unterminated', 400, "JSON"),
    (b"[]", 422, "JSON object"),
    (b'"just a string"', 422, "JSON object"),
    (b"{}", 422, "text: is required"),
    (b'{"text": 5}', 422, "text: must be a string"),
    (b'{"text": null}', 422, "text: must be a string"),
    (b'{"text": ""}', 422, "text: must not be empty"),
    (b'{"text": "   "}', 422, "text: must not be empty"),
    (b'{"text": "' + b"x" * 2001 + b'"}', 422, "text: must be at most 2000 characters"),
    (b'{"text": "bell\\u0007"}', 422, "text: must not hold control characters"),
    (b'{"text": "hi", "colour": "red"}', 422, "colour: unknown field"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_announce_bodies_get_4xx_naming_the_problem(ops: LivehubProcess, body: bytes,
                                                        status: int, message: str) -> None:
    r = call(ops, "POST", ANNOUNCE.format(room="premod"), headers={
        **bearer(), "Content-Type": "application/json"}, content=body)
    err = assert_error(r, status, message)
    if status == 422:
        assert err["error"] == "invalid_body" and err["problems"][0]["field"]


def test_oversized_body_is_413(ops: LivehubProcess) -> None:
    r = call(ops, "POST", ANNOUNCE.format(room="premod"), headers=bearer(),
             content=b'{"text": "' + b"x" * 70_000 + b'"}')
    assert_error(r, 413)


def test_wrong_method_is_405(ops: LivehubProcess) -> None:
    assert call(ops, "GET", ANNOUNCE.format(room="premod"), headers=bearer()).status_code == 405


async def test_announcement_is_a_sequenced_msg_seen_by_the_room(ops: LivehubProcess) -> None:
    listener = await Client.join(ops.ws_url, "lobby-2", name="Listener")
    async with httpx.AsyncClient(base_url=ops.url, timeout=10) as http:
        r = await http.post(ANNOUNCE.format(room="lobby-2"), json={"text": "Lunch at one"},
                            headers=bearer(name="Events Team", sub="org-1"))
        assert r.status_code == 201, r.text
        answer = r.json()
        assert answer["room"] == "lobby-2" and isinstance(answer["mid"], str)
        msg = await listener.recv_until(lambda e: e.get("t") == "msg")
        assert msg == {**msg, "mid": answer["mid"], "seq": answer["seq"], "uid": "org-1",
                       "name": "Events Team", "role": "moderator", "text": "Lunch at one",
                       "announcement": True}
        # A retry with the same Idempotency-Key publishes nothing new.
        headers = {**bearer(name="Events Team", sub="org-1"), "Idempotency-Key": "lunch-1"}
        first = await http.post(ANNOUNCE.format(room="lobby-2"), json={"text": "Tea at 3"},
                                headers=headers)
        again = await http.post(ANNOUNCE.format(room="lobby-2"), json={"text": "Tea at 3"},
                                headers=headers)
        assert first.status_code == 201 and again.status_code == 200
        assert again.json()["mid"] == first.json()["mid"] and again.json()["duplicate"] is True
        assert again.json()["seq"] == first.json()["seq"]
        tea = await listener.recv_until(lambda e: e.get("t") == "msg")
        assert tea["text"] == "Tea at 3"
        await http.post(ANNOUNCE.format(room="lobby-2"), json={"text": "marker"},
                        headers=bearer())
        marker = await listener.recv_until(lambda e: e.get("t") == "msg")
        assert marker["text"] == "marker"  # nothing came between: "Tea at 3" came once
        bad_key = {**bearer(), "Idempotency-Key": "k" * 65}
        assert_error(await http.post(ANNOUNCE.format(room="lobby-2"), json={"text": "x"},
                                     headers=bad_key), 400, "Idempotency-Key")
    await listener.close()


async def test_muted_moderator_cannot_announce(ops: LivehubProcess) -> None:
    mod = await Client.join(ops.ws_url, "lobby-2", token=token("moderator", sub="boss"))
    ok = await mod.request({"t": "mute", "uid": "junior", "seconds": 60})
    assert ok["t"] == "ok"
    r = call(ops, "POST", ANNOUNCE.format(room="lobby-2"), json={"text": "hi"},
             headers=bearer(sub="junior"))
    assert_error(r, 403, "muted")
    assert r.json()["error"] == "muted"
    await mod.close()
