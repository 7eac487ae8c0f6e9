"""Transport limits through real server processes (PROTOCOL.md "Fair limits").

Connections per client address counted from accept (clients bind 127.0.0.x source
addresses, so one machine plays several), the proxy case, the HTTP deadlines, and the
process cap. Each abuse runs next to an honest client that is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
import websockets

from tests.hardening.conftest import ROOMS, Logged, Spawn, assert_no_traceback, eventually
from tests.support import Client

ABUSER, HONEST, PROXY, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6"
REFUSED = (websockets.InvalidStatus, websockets.InvalidMessage, websockets.ConnectionClosed,
           OSError, EOFError)


async def raw(srv: Logged, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from ``source`` that sends nothing (yet)."""
    return await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(source, 0))


async def connect(srv: Logged, slug: str, source: str,
                  forwarded: str | None = None) -> Client:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else None
    ws = await websockets.connect(
        f"{srv.ws_url}/ws/{slug}", subprotocols=["livehub.v1.json"],  # type: ignore[list-item]
        additional_headers=headers, open_timeout=10, compression=None,
        local_addr=(source, 0))
    return Client(ws, "json")


async def join(srv: Logged, slug: str, source: str, name: str,
               forwarded: str | None = None) -> Client:
    client = await connect(srv, slug, source, forwarded)
    await client.hello(name=name)
    return client


async def refused_status(srv: Logged, slug: str, source: str,
                         forwarded: str | None = None) -> int | None:
    """The HTTP status a refused upgrade got (None: closed before any answer)."""
    try:
        client = await connect(srv, slug, source, forwarded)
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    except REFUSED:
        return None
    await client.close()
    raise AssertionError("the connection was not refused")


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sent before it closed; fails if it keeps the connection open."""
    data = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(4096):
                data += chunk
    return data


async def honest_post(srv: Logged, slug: str, text: str) -> None:
    client = await join(srv, slug, HONEST, "Honest")
    assert (await client.request({"t": "post", "text": text}))["t"] == "ok"
    await client.close()


def refusals(srv: Logged, limit: str) -> float:
    text = httpx.get(srv.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'livehub_refusals_total{{limit="{limit}"}}'):
            return float(line.rpartition(" ")[2])
    return 0.0


# --- connections per client address -------------------------------------------------------


async def test_connections_per_address_counted_from_accept(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "3", "LIVEHUB_HEADER_TIMEOUT": "8"})
    mark = srv.mark()
    slug = ROOMS[0]
    # Three silent connections (not one byte sent) fill the address's places.
    silent = [await raw(srv, ABUSER) for _ in range(3)]
    await asyncio.sleep(0.2)
    for _ in range(3):  # WebSocket and plain HTTP alike
        assert await refused_status(srv, slug, ABUSER) in (429, None)
    reader, writer = await raw(srv, ABUSER)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await closed_by_server(reader, 3)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 429"), answer
    writer.close()
    # Everyone else is unaffected meanwhile.
    await honest_post(srv, slug, "still here")
    # When one of the address's connections closes, the next is accepted again.
    silent[0][1].close()
    await asyncio.sleep(0.3)
    again = await join(srv, slug, ABUSER, "Back")
    assert (await again.request({"t": "post", "text": "back in"}))["t"] == "ok"
    assert await refused_status(srv, slug, ABUSER) in (429, None)
    await again.close()
    for _, w in silent[1:]:
        w.close()
    assert refusals(srv, "connections_per_address") >= 5
    lines = [ln for ln in srv.lines_since(mark) if "limit refusing" in ln]
    assert len(lines) == 1, lines  # one line when it started refusing, not one per refusal
    assert "ip=127.0.0.2" in lines[0] and "connections_per_address" in lines[0]
    assert_no_traceback(srv.log_text())


async def test_proxy_counts_the_forwarded_address_once_the_head_arrived(spawn: Spawn) -> None:
    # The flag wins over the environment.
    srv = spawn({"LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "2", "LIVEHUB_HEADER_TIMEOUT": "8",
                 "LIVEHUB_FORWARDED_ALLOW_IPS": STRANGER},
                args=["--forwarded-allow-ips", f"{PROXY}, 10.0.0.0/8"])
    mark = srv.mark()
    slug = ROOMS[1]
    # Before its request head a proxy's connection counts under no address.
    idle = [await raw(srv, PROXY) for _ in range(4)]
    for reader, _ in idle:
        with pytest.raises(TimeoutError):  # still open: not refused
            await asyncio.wait_for(reader.read(1), 0.1)
    # The client typed the left-most entry; the proxy appended the real peer.
    first = await join(srv, slug, PROXY, "P1", "6.6.6.6, 203.0.113.7")
    second = await join(srv, slug, PROXY, "P2", "6.6.6.6, 203.0.113.7, 10.1.1.1")
    assert await refused_status(srv, slug, PROXY, "203.0.113.7") == 429
    assert await refused_status(srv, slug, PROXY, "7.7.7.7, 203.0.113.7") == 429
    other = await join(srv, slug, PROXY, "P3", "203.0.113.8")  # another client: its own
    # From a peer that is not listed, the header is ignored: counted under the peer.
    s1 = await join(srv, slug, STRANGER, "S1", "203.0.113.50")
    s2 = await join(srv, slug, STRANGER, "S2", "203.0.113.51")
    assert await refused_status(srv, slug, STRANGER, "203.0.113.52") in (429, None)
    await honest_post(srv, slug, "unaffected")
    await first.close()
    await asyncio.sleep(0.3)
    again = await join(srv, slug, PROXY, "P4", "203.0.113.7")
    for c in (second, other, s1, s2, again):
        await c.close()
    for _, w in idle:
        w.close()
    log = "\n".join(srv.lines_since(mark))
    refused_lines = [ln for ln in log.splitlines() if "limit refusing" in ln]
    assert any("ip=203.0.113.7" in ln for ln in refused_lines), refused_lines
    assert any("ip=127.0.0.6" in ln for ln in refused_lines), refused_lines
    assert "203.0.113.5" not in "\n".join(refused_lines)  # the spoofed entries
    assert "6.6.6.6" not in log and "7.7.7.7" not in log
    opened = [ln for ln in log.splitlines() if "connection open" in ln]
    assert any("ip=203.0.113.7" in ln for ln in opened), opened  # what handlers see
    assert any("ip=127.0.0.6" in ln for ln in opened), opened
    assert_no_traceback(srv.log_text())


# --- HTTP deadlines -----------------------------------------------------------------------


async def test_slow_request_heads_are_closed_at_the_deadline(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_HEADER_TIMEOUT": "2"})
    slug = ROOMS[2]
    t0 = time.monotonic()
    silent_reader, _silent = await raw(srv, ABUSER)
    trickle_reader, trickle = await raw(srv, ABUSER)
    ws_reader, ws_trickle = await raw(srv, ABUSER)

    async def one_byte_a_second(writer: asyncio.StreamWriter, head: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            for i in range(len(head)):
                writer.write(head[i:i + 1])
                await writer.drain()
                await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(one_byte_a_second(trickle, b"GET /healthz HTTP/1.1\r\n"
                                                   b"Host: x\r\n" + b"X-Pad: y\r\n" * 20)),
             asyncio.create_task(one_byte_a_second(ws_trickle, (
                 f"GET /ws/{slug} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").encode()))]
    honest = await join(srv, slug, HONEST, "Honest")  # served meanwhile
    for reader in (silent_reader, trickle_reader, ws_reader):
        answer = await closed_by_server(reader, 6)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    elapsed = time.monotonic() - t0
    assert 1.8 < elapsed < 4.5, elapsed
    for task in tasks:
        task.cancel()
    # A joined WebSocket is long past its head: the deadline does not touch it.
    assert (await honest.request({"t": "post", "text": "still open"}))["t"] == "ok"
    await honest.close()
    assert refusals(srv, "header_timeout") >= 3
    assert_no_traceback(srv.log_text())


async def test_idle_keep_alive_is_closed_after_5_seconds(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_HEADER_TIMEOUT": "30"})
    reader, writer = await raw(srv, HONEST)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    # Kept alive: a second request on it is answered.
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(length)
    t0 = time.monotonic()
    assert await closed_by_server(reader, 9) == b""
    assert 4.5 < time.monotonic() - t0 < 7.5


async def test_oversized_request_head_is_refused(spawn: Spawn) -> None:
    srv = spawn()
    reader, writer = await raw(srv, ABUSER)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    with contextlib.suppress(ConnectionError):
        for _ in range(100):
            writer.write(b"X-Pad: " + b"y" * 1000 + b"\r\n")
            await writer.drain()
    answer = await closed_by_server(reader, 5)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer
    assert _healthz_from(HONEST, srv.port)


# --- process cap --------------------------------------------------------------------------


async def test_process_connection_cap(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_MAX_CONNECTIONS": "5", "LIVEHUB_HEADER_TIMEOUT": "30"})
    slug = ROOMS[3]
    honest = await join(srv, slug, HONEST, "Honest")
    held = [await raw(srv, f"127.0.0.{10 + i}") for i in range(4)]
    await asyncio.sleep(0.2)
    reader, writer = await raw(srv, "127.0.0.20")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await closed_by_server(reader, 3)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
    # Open connections are still served.
    assert (await honest.request({"t": "post", "text": "full house"}))["t"] == "ok"
    held[0][1].close()
    await eventually(lambda: _healthz_from("127.0.0.21", srv.port), 5, "a free place")
    for _, w in held[1:]:
        w.close()
    await honest.close()


def _healthz_from(source: str, port: int) -> bool:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=2) as http:
        try:
            return http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.HTTPError:
            return False



# --- settings ----------------------------------------------------------------------------


async def test_old_setting_name_and_uvicorns_variable(spawn: Spawn) -> None:
    """LIVEHUB_MAX_CONNECTIONS_PER_IP still works, with a warning; uvicorn's
    FORWARDED_ALLOW_IPS cannot widen trust (a spoofed header changes nothing)."""
    srv = spawn({"LIVEHUB_MAX_CONNECTIONS_PER_IP": "2", "FORWARDED_ALLOW_IPS": "*"})
    log = srv.log_text()
    assert "LIVEHUB_MAX_CONNECTIONS_PER_IP is deprecated" in log
    assert "FORWARDED_ALLOW_IPS (uvicorn's) is ignored" in log
    slug = ROOMS[4]
    held = [await join(srv, slug, ABUSER, f"A{i}", f"203.0.113.{i}") for i in range(2)]
    assert await refused_status(srv, slug, ABUSER, "203.0.113.9") in (429, None)
    await honest_post(srv, slug, "fine")
    for c in held:
        await c.close()
