"""Every limit, configurable with a safe default, through real server processes.

Frame size, text length, requests per connection (and the flood close), connections
per client address, the first-frame deadline, and WebSocket keepalive for dead peers.
The defaults themselves are checked against PROTOCOL.md without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import websockets

from livehub.config import Config
from livehub.server import uvicorn_config
from tests.hardening.conftest import (
    ROOMS,
    Logged,
    Spawn,
    assert_no_traceback,
    eventually,
    start_server,
    stop_server,
)
from tests.hardening.rawws import OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawWebSocket
from tests.support import Client, Closed, LivehubProcess

CODECS = ["json", "msgpack"]
LOWERED = {
    "LIVEHUB_MAX_FRAME": "4096",
    "LIVEHUB_MAX_TEXT": "100",
    "LIVEHUB_HELLO_TIMEOUT": "1",
    "LIVEHUB_RATE_LIMIT": "10",
    "LIVEHUB_RATE_WINDOW": "1",
    "LIVEHUB_FLOOD_LIMIT": "10",
}


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    """A server with every per-connection limit lowered, so tests take seconds."""
    proc = start_server(tmp_path_factory.mktemp("limits"), LOWERED)
    yield proc
    stop_server(proc)
    assert_no_traceback(proc.log_text())


_rooms = iter(ROOMS)


def room() -> str:
    return next(_rooms)


async def guest(server: LivehubProcess, slug: str, codec: str = "json",
                name: str = "Ann") -> Client:
    return await Client.join(server.ws_url, slug, codec, name=name)


async def read_all(client: Client, timeout: float = 10.0
                   ) -> tuple[list[dict[str, Any]], Closed]:
    """Every event until the server closes the connection, and how it closed."""
    seen: list[dict[str, Any]] = []
    while True:
        try:
            seen.append(await client.recv(timeout))
        except Closed as closed:
            return seen, closed


async def answers(client: Client, n: int, timeout: float = 5.0) -> list[dict[str, object]]:
    return [await client.recv_until(lambda e: e["t"] in ("ok", "error"), timeout)
            for _ in range(n)]


def test_defaults_are_the_protocols_and_reach_uvicorn(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    import os
    for key in [k for k in os.environ if k.startswith("LIVEHUB_")]:
        monkeypatch.delenv(key)
    cfg = Config()
    assert (cfg.max_frame, cfg.max_text, cfg.rate_limit, cfg.rate_window) == (65536, 2000, 20, 10)
    assert (cfg.hello_timeout, cfg.flood_limit, cfg.max_connections_per_address) == (10, 20, 500)
    assert (cfg.header_timeout, cfg.forwarded_allow_ips) == (10, "127.0.0.1,::1")
    assert (cfg.ping_interval, cfg.ping_timeout, cfg.send_queue) == (20, 20, 1000)
    assert cfg.compression is False
    uv = uvicorn_config(cfg, app=None)
    assert uv.ws_max_size == 65536
    assert (uv.ws_ping_interval, uv.ws_ping_timeout) == (20, 20)
    assert uv.ws_per_message_deflate is False
    # Lowered through the environment, as the tests below do.
    monkeypatch.setenv("LIVEHUB_MAX_FRAME", "4096")
    monkeypatch.setenv("LIVEHUB_PING_INTERVAL", "0.5")
    monkeypatch.setenv("LIVEHUB_COMPRESSION", "1")
    uv = uvicorn_config(Config(), app=None)
    assert (uv.ws_max_size, uv.ws_ping_interval, uv.ws_per_message_deflate) == (4096, 0.5, True)


# --- frame size ---------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
async def test_lowered_frame_limit_closes_1009_and_is_logged(limits: Logged, codec: str
                                                             ) -> None:
    slug = room()
    mark = limits.mark()
    a = await guest(limits, slug, codec)
    # Just under the limit is fine (unknown keys are ignored).
    ok = await a.request({"t": "post", "text": "fits", "pad": "x" * 3900})
    assert ok["t"] == "ok"
    await a.send({"t": "post", "text": "too big", "pad": "x" * 4200})
    assert (await a.expect_close()).code == 1009
    await eventually(lambda: any("1009" in ln for ln in limits.lines_since(mark)),
                     what="a log line for the 1009 close")
    closes = [ln for ln in limits.lines_since(mark) if "connection closed" in ln]
    assert len(closes) == 1 and "size limit" in closes[0], closes


async def test_frame_limit_applies_before_hello_and_to_fragmented_messages(limits: Logged
                                                                            ) -> None:
    slug = room()
    c = await Client.connect(limits.ws_url, slug)
    await c.send({"t": "hello", "name": "x", "pad": "y" * 5000})
    assert (await c.expect_close()).code == 1009
    # Three fragments of 2000 bytes: each is small, the message is not.
    r = await RawWebSocket.connect(limits.port, f"/ws/{slug}")
    await r.send_text(json.dumps({"t": "hello", "name": "Frag"}))
    assert (await r.read_frame()).payload.startswith(b'{"t":"welcome"')
    await r.send_frame(OP_TEXT, b" " * 2000, fin=False)
    await r.send_frame(OP_CONT, b" " * 2000, fin=False)
    await r.send_frame(OP_CONT, b" " * 2000, fin=True)
    close, _ = await r.read_until_close()
    assert close is not None and close.close_code == 1009


# --- text length ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
async def test_lowered_text_limit_counts_code_points(limits: Logged, codec: str) -> None:
    a = await guest(limits, room(), codec)
    assert (await a.request({"t": "post", "text": "🙂" * 100}))["t"] == "ok"
    for frame in ({"t": "post", "text": "🙂" * 101}, {"t": "ask", "text": "q" * 101}):
        err = await a.request(frame)
        assert err["t"] == "error" and err["code"] == "too_long", err
    assert (await a.request({"t": "ask", "text": "q" * 100}))["t"] == "ok"
    await a.close()


# --- requests per connection ----------------------------------------------------------------


async def test_brief_burst_is_rate_limited_but_not_closed(limits: Logged) -> None:
    """10 per second allowed, 10 refusals tolerated: a burst of 18 stays connected."""
    mark = limits.mark()
    a = await guest(limits, room())
    for i in range(18):
        await a.send({"t": "ping", "id": f"b{i}"})
    got = await answers(a, 18)
    assert [x["t"] for x in got[:10]] == ["ok"] * 10
    assert {x.get("code") for x in got[10:]} == {"rate_limited"}
    await asyncio.sleep(1.1)  # the window has passed: back to normal
    assert (await a.request({"t": "post", "text": "still welcome"}))["t"] == "ok"
    await a.close()
    assert not [ln for ln in limits.lines_since(mark) if "flooding" in ln]


async def test_sustained_flood_is_closed_1008_once(limits: Logged) -> None:
    """Four times the allowed rate, paced over several windows: closed 1008, logged once."""
    mark = limits.mark()
    a = await guest(limits, room())
    reader = asyncio.create_task(read_all(a))
    sent, t0 = 0, time.monotonic()
    while not reader.done() and time.monotonic() - t0 < 5:
        try:
            await a.send({"t": "ping", "id": f"f{sent}"})
        except websockets.ConnectionClosed:
            break
        sent += 1
        await asyncio.sleep(0.025)
    got, closed = await reader
    assert closed.code == 1008 and "flood" in closed.reason
    assert sum(e["t"] == "ok" for e in got) >= 10
    assert sum(e.get("code") == "rate_limited" for e in got) <= 10
    assert sent < 60, "a 40/s flood against 10/s should be closed within about two windows"
    lines = [ln for ln in limits.lines_since(mark) if "flooding" in ln]
    assert len(lines) == 1 and "ip=" in lines[0], lines


async def test_polite_client_just_under_the_limit_is_never_refused(limits: Logged) -> None:
    a = await guest(limits, room())
    for i in range(16):  # 8 per second for 2 s against 10 per second
        assert (await a.request({"t": "ping", "id": f"p{i}"}))["t"] == "ok"
        await asyncio.sleep(0.125)
    await a.close()


async def test_default_limits_close_on_the_41st_request(server: LivehubProcess) -> None:
    """With the defaults (20 per 10 s, 20 refusals tolerated): 20 ok, 20 refused, closed."""
    a = await Client.join(server.ws_url, "lobby", name="Flood")
    for i in range(60):
        await a.send({"t": "ping", "id": f"d{i}"})
    seen, closed = await read_all(a)
    assert closed.code == 1008
    outcomes = [e["t"] if e["t"] == "ok" else e.get("code") for e in seen
                if e["t"] in ("ok", "error")]
    assert outcomes == ["ok"] * 20 + ["rate_limited"] * 20


# --- connections per client address ------------------------------------------------------


async def test_connections_per_address_are_capped_and_freed(spawn: Spawn) -> None:
    """Counted from accept (before the upgrade); more in tests/hardening/test_netlimits.py."""
    srv = spawn({"LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "3", "LIVEHUB_HELLO_TIMEOUT": "5",
                 "LIVEHUB_FORWARDED_ALLOW_IPS": "192.0.2.1"})  # loopback is not a proxy here
    mark = srv.mark()
    slug = ROOMS[0]
    a = await guest(srv, slug, name="A")
    b = await guest(srv, slug, "msgpack", name="B")
    waiting = await Client.connect(srv.ws_url, slug)  # not signed in yet: still counts
    with pytest.raises((websockets.InvalidStatus, websockets.InvalidMessage, OSError,
                        websockets.ConnectionClosed)) as refused:
        await Client.connect(srv.ws_url, slug)
    if isinstance(refused.value, websockets.InvalidStatus):
        assert refused.value.response.status_code == 429
    # A slot frees when a connection closes.
    await waiting.close()
    await asyncio.sleep(0.2)
    c = await guest(srv, slug, name="C")
    assert (await c.request({"t": "post", "text": "got in"}))["t"] == "ok"
    for x in (a, b, c):
        await x.close()
    lines = [ln for ln in srv.lines_since(mark) if "too many connections" in ln]
    assert len(lines) == 1 and "ip=127.0.0.1" in lines[0], lines
    assert_no_traceback(srv.log_text())


# --- first-frame deadline -----------------------------------------------------------------------


async def test_hello_deadline_is_not_extended_by_junk(limits: Logged) -> None:
    """Junk before ``hello`` gets errors but does not buy time: closed 1008 at the deadline."""
    mark = limits.mark()
    slug = room()
    silent = await Client.connect(limits.ws_url, slug)
    chatty = await Client.connect(limits.ws_url, slug, "msgpack")
    nameless = await Client.connect(limits.ws_url, slug)
    t0 = time.monotonic()

    async def keep_sending(c: Client, frame: object) -> None:
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(200):
                await c.send_raw(frame) if isinstance(frame, bytes) else await c.send(frame)
                await asyncio.sleep(0.2)  # under the rate limit: only the deadline applies

    junk = asyncio.gather(keep_sending(chatty, msgpack.packb([1, 2, 3])),
                          keep_sending(nameless, {"t": "hello"}))
    results = await asyncio.gather(*(read_all(c, 5) for c in (silent, chatty, nameless)))
    elapsed = time.monotonic() - t0
    for _, closed in results:
        assert closed.code == 1008 and "hello" in closed.reason
    assert elapsed < 1 + 2.5, f"closed after {elapsed:.1f}s with a 1 s deadline"
    await junk
    for seen, _ in results[1:]:
        assert seen and {e.get("code") for e in seen} == {"bad_frame"}, seen[:3]
    await eventually(lambda: sum("no hello in time" in ln
                                 for ln in limits.lines_since(mark)) >= 3)
    assert sum("no hello in time" in ln for ln in limits.lines_since(mark)) == 3


async def test_junk_before_hello_counts_against_the_rate_limit(limits: Logged) -> None:
    """Before ``hello`` there is no identity yet, but frames are not free: a flood of junk
    in the first-frame window is closed 1008 well before the deadline."""
    mark = limits.mark()
    c = await Client.connect(limits.ws_url, room(), "msgpack")
    t0 = time.monotonic()
    reader = asyncio.create_task(read_all(c, 5))
    with contextlib.suppress(websockets.ConnectionClosed):
        for _ in range(500):
            await c.send_raw(b"\xc1")
    seen, closed = await reader
    assert closed.code == 1008 and "flood" in closed.reason, closed
    assert time.monotonic() - t0 < 1.0, "closed for flooding, not at the 1 s deadline"
    assert len(seen) <= 10, f"{len(seen)} answers before the close"
    await eventually(lambda: any("flooding before hello" in ln
                                 for ln in limits.lines_since(mark)))


# --- keepalive: dead peers are dropped ------------------------------------------------------------


@pytest.fixture(scope="module")
def pinging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    proc = start_server(tmp_path_factory.mktemp("ping"),
                        {"LIVEHUB_PING_INTERVAL": "0.5", "LIVEHUB_PING_TIMEOUT": "0.5"})
    yield proc
    stop_server(proc)
    assert_no_traceback(proc.log_text())


async def test_peer_that_never_answers_pings_is_dropped(pinging: Logged) -> None:
    """A raw client reads everything but never sends a pong: gone within interval+timeout."""
    slug = ROOMS[1]
    watcher = await guest(pinging, slug, name="Watcher")
    r = await RawWebSocket.connect(pinging.port, f"/ws/{slug}")
    await r.send_text(json.dumps({"t": "hello", "name": "Mute peer"}))
    t0 = time.monotonic()
    frames = await r.wait_eof(timeout=10)
    elapsed = time.monotonic() - t0
    assert any(f.opcode == OP_PING for f in frames)
    closes = [f for f in frames if f.opcode == OP_CLOSE]
    assert closes and closes[-1].close_code == 1011
    assert elapsed < 0.5 + 0.5 + 2.0, f"dropped after {elapsed:.1f}s"
    await eventually(lambda: pinging.online(slug) == 1, what="the dead peer to leave the room")
    assert (await watcher.request({"t": "post", "text": "still here"}))["t"] == "ok"
    await watcher.close()


async def test_peer_that_stops_reading_is_dropped_and_its_room_hears(pinging: Logged) -> None:
    """A websockets client whose socket is no longer read (a phone gone into a tunnel)."""
    slug = ROOMS[2]
    watcher = await guest(pinging, slug, name="Watcher")
    gone = await guest(pinging, slug, name="Tunnel")
    assert gone.welcome["online"] == 2
    gone.ws.transport.pause_reading()  # no more reads, so no pongs either
    ev = await watcher.recv_until(lambda e: e["t"] == "presence" and e["online"] == 1,
                                  timeout=6)
    assert ev["online"] == 1
    gone.ws.transport.abort()
    await watcher.close()


async def test_quiet_but_alive_clients_are_kept(pinging: Logged) -> None:
    """Idle for several ping intervals: a client that answers pings stays connected."""
    a = await guest(pinging, ROOMS[3], name="Quiet")
    await asyncio.sleep(2.5)
    assert (await a.request({"t": "post", "text": "still here after a pause"}))["t"] == "ok"
    await a.close()



async def test_room_hears_when_someone_joins(pinging: Logged) -> None:
    watcher = await guest(pinging, ROOMS[4], name="Watcher")
    other = await guest(pinging, ROOMS[4], name="Newcomer")
    try:
        # (a presence from before the newcomer arrived may come first on a busy machine)
        ev = await watcher.recv_until(
            lambda e: e["t"] == "presence" and e["online"] == 2, timeout=5)
        assert ev["online"] == 2
    finally:
        await other.close()
        await watcher.close()
