"""What the server says about client mistakes: one line each, with the reason, no traceback.

One server with low limits; each kind of abuse happens exactly once; then its log
is read. Every refused connection and every closed abuser has exactly one line naming
the reason and the client address; nothing is logged as an error; no token appears.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct

import jwt
import pytest
import websockets

from tests.hardening.conftest import ROOMS, Spawn, assert_no_traceback, eventually
from tests.hardening.rawws import OP_CLOSE, OP_TEXT, RawWebSocket, encode_frame
from tests.support import SECRET, Client, token

ABUSES = {
    # reason in the log line -> how it is provoked (below)
    "origin not allowed": "a page on another site",
    "no such room": "a room that does not exist",
    "no hello in time": "silence after connecting",
    "first frame must be hello": "a post before hello",
    "auth failed: ": "a forged and an expired token (two lines)",
    "banned": "rejoining after a ban",
    "flooding past the rate limit": "a flood",
    "frame over the size limit": "a frame over the limit",
    "invalid UTF-8 in a text frame": "a text frame that is not UTF-8",
    "WebSocket protocol error": "a frame with reserved bits",
    "too many connections from your address": "one connection too many",
}


async def test_each_abuse_is_logged_once_with_its_reason(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_ALLOWED_ORIGINS": "https://conference.example",
                 "LIVEHUB_HELLO_TIMEOUT": "0.5", "LIVEHUB_RATE_LIMIT": "5",
                 "LIVEHUB_RATE_WINDOW": "1", "LIVEHUB_FLOOD_LIMIT": "5",
                 "LIVEHUB_MAX_FRAME": "4096", "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "4",
                 "LIVEHUB_FORWARDED_ALLOW_IPS": "192.0.2.1"})
    slug = ROOMS[0]
    mark = srv.mark()
    forged = jwt.encode({"sub": "x", "name": "X", "role": "moderator", "exp": 2**31},
                        "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    expired = token("participant", sub="late", ttl=-60)

    # Nothing to say about well-behaved clients.
    fine = await Client.connect(srv.ws_url, slug, origin="https://conference.example")
    await fine.hello(name="Fine")
    assert (await fine.request({"t": "post", "text": "hello"}))["t"] == "ok"
    await fine.close()

    with pytest.raises(websockets.InvalidStatus):
        await Client.connect(srv.ws_url, slug, origin="https://evil.example")
    assert (await (await Client.connect(srv.ws_url, "no-such-room")).expect_close()).code == 4404
    assert (await (await Client.connect(srv.ws_url, slug)).expect_close()).code == 1008
    c = await Client.connect(srv.ws_url, slug)
    await c.send({"t": "post", "text": "me first"})
    assert (await c.expect_close()).code == 1008
    for bad in (forged, expired):
        c = await Client.connect(srv.ws_url, slug)
        await c.send({"t": "hello", "token": bad})
        assert (await c.recv())["code"] == "auth_failed"
        assert (await c.expect_close()).code == 4401

    mod = await Client.join(srv.ws_url, slug, token=token("moderator", sub="mod"))
    victim = await Client.join(srv.ws_url, slug, token=token("participant", sub="victim"))
    assert (await mod.request({"t": "ban", "uid": "victim"}))["t"] == "ok"
    assert (await victim.expect_close()).code == 4403
    c = await Client.connect(srv.ws_url, slug)
    await c.send({"t": "hello", "token": token("participant", sub="victim")})
    assert (await c.expect_close()).code == 4403
    await mod.close()

    flood = await Client.join(srv.ws_url, slug, name="Flood")
    for i in range(30):
        await flood.send({"t": "ping", "id": str(i)})
    assert (await flood.expect_close()).code == 1008
    big = await Client.join(srv.ws_url, slug, name="Big")
    await big.send({"t": "post", "text": "x", "pad": "y" * 5000})
    assert (await big.expect_close()).code == 1009
    for frame in (b'{"t":"post","text":"\xff"}', None):
        raw = await RawWebSocket.connect(srv.port, f"/ws/{slug}")
        await raw.send_text(json.dumps({"t": "hello", "name": "Raw"}))
        await raw.read_frame()
        if frame is not None:
            await raw.send_frame(OP_TEXT, frame)
        else:  # RSV2 and RSV3 set: no extension gives them a meaning
            raw.writer.write(bytes([0x80 | 0x30 | OP_TEXT, 0x80]) + b"\0\0\0\0")
        close, _ = await raw.read_until_close()
        assert close is not None and close.close_code in (1007, 1002)
        raw.abort()

    await asyncio.sleep(0.3)  # every connection above has left
    held = [await Client.join(srv.ws_url, slug, name=f"H{i}") for i in range(4)]
    for _ in range(3):  # refused from accept (HTTP 429 or closed): logged once all the same
        with pytest.raises((websockets.InvalidStatus, websockets.InvalidMessage, OSError,
                            websockets.ConnectionClosed)):
            await Client.connect(srv.ws_url, slug)
    for h in held:
        await h.close()

    def said() -> list[str]:
        return [ln for ln in srv.lines_since(mark)
                if re.search(r"(connection (refused|closed)|limit refusing)\s", ln)
                and "livehub." in ln]
    await eventually(lambda: len(said()) >= len(ABUSES) + 1, what="a line per abuse")
    await asyncio.sleep(0.3)
    lines = said()
    report = "\n".join(lines)
    assert len(lines) == len(ABUSES) + 1, report  # auth failed twice
    for reason in ABUSES:
        mine = [ln for ln in lines if reason in ln]
        assert len(mine) == (2 if reason.startswith("auth") else 1), (reason, report)
    assert all("ip=" in ln for ln in lines if "no such room" not in ln), report
    log = srv.log_text()
    assert forged not in log and expired not in log and "eyJ" not in log, "a token was logged"
    assert SECRET not in log
    assert_no_traceback(log)


async def test_bad_text_and_close_in_one_packet_is_not_a_server_error(spawn: Spawn) -> None:
    """A text frame that is not UTF-8 followed at once by a close frame: uvicorn would try
    to close 1007 a connection that is already closing, and the event loop would log a
    fatal transport error with two tracebacks."""
    srv = spawn()
    for hello_first in (True, False):
        raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[1]}")
        if hello_first:
            await raw.send_text(json.dumps({"t": "hello", "name": "Quick"}))
            await raw.read_frame()
        raw.writer.write(encode_frame(OP_TEXT, b'{"t":"post","text":"\xff"}')
                         + encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
        await raw.writer.drain()
        close, _ = await raw.read_until_close()
        assert close is None or close.close_code in (1000, 1007)
        raw.abort()
    c = await Client.join(srv.ws_url, ROOMS[1], name="After")
    assert (await c.request({"t": "post", "text": "fine"}))["t"] == "ok"
    await c.close()
    await asyncio.sleep(0.2)
    assert srv.healthy()
    assert_no_traceback(srv.log_text())
