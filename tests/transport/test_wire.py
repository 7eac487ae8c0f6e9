"""livehub's WebSocket transport (livehub/transport.py) through a real server, byte by byte:
fragments, size and UTF-8 limits, and the same frame for every listener of a room."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.hardening.conftest import ROOMS, Spawn, assert_no_traceback, eventually
from tests.hardening.rawws import OP_CONT, OP_TEXT, RawWebSocket, encode_frame
from tests.support import Client

LIVEHUB = Path(__file__).resolve().parents[2] / "livehub"


async def hello(raw: RawWebSocket, name: str) -> dict[str, object]:
    await raw.send_text(json.dumps({"t": "hello", "name": name}))
    frame = await raw.read_frame()
    assert frame.opcode == OP_TEXT
    welcome: dict[str, object] = json.loads(frame.payload)
    assert welcome["t"] == "welcome"
    return welcome


async def test_every_listener_gets_the_same_frame(spawn: Spawn) -> None:
    srv = spawn()
    room = ROOMS[5]
    listeners = [await RawWebSocket.connect(srv.port, f"/ws/{room}") for _ in range(3)]
    for i, raw in enumerate(listeners):
        await hello(raw, f"Listener {i}")
    poster = await Client.join(srv.ws_url, room=room, name="Poster")
    assert (await poster.request({"t": "post", "text": "one frame for all"}))["t"] == "ok"
    seen: list[bytes] = []
    for raw in listeners:
        while True:
            frame = await raw.read_frame()
            if b"one frame for all" in frame.payload:
                seen.append(frame.payload)
                break
    assert len(set(seen)) == 1
    await poster.close()
    for raw in listeners:
        raw.abort()


async def test_a_fragmented_hello_is_one_message(spawn: Spawn) -> None:
    srv = spawn()
    raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[6]}")
    text = json.dumps({"t": "hello", "name": "In pieces"}).encode()
    await raw.send_frame(OP_TEXT, text[:7], fin=False)
    await raw.send_frame(OP_CONT, text[7:15], fin=False)
    await raw.send_frame(OP_CONT, text[15:])
    frame = await raw.read_frame()
    assert json.loads(frame.payload)["t"] == "welcome"
    raw.abort()


async def test_fragments_past_the_frame_limit_close_1009(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_MAX_FRAME": "4096"})
    mark = srv.mark()
    raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[7]}")
    await hello(raw, "Piecemeal")
    await raw.send_frame(OP_TEXT, b"x" * 3000, fin=False)
    await raw.send_frame(OP_CONT, b"x" * 3000, fin=False)
    close, _ = await raw.read_until_close(timeout=5)
    assert close is not None and close.close_code == 1009
    await eventually(lambda: any("frame over the size limit" in ln
                                 for ln in srv.lines_since(mark)), what="the 1009 line")
    assert_no_traceback(srv.log_text())


async def test_invalid_utf8_closes_1007_with_one_line(spawn: Spawn) -> None:
    srv = spawn()
    mark = srv.mark()
    raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[8]}")
    await hello(raw, "Garbler")
    await raw.send_frame(OP_TEXT, b"\xff\xfe not text")
    close, _ = await raw.read_until_close(timeout=5)
    assert close is not None and close.close_code == 1007
    await eventually(lambda: any("invalid UTF-8" in ln and "ip=127.0.0.1" in ln
                                 for ln in srv.lines_since(mark)), what="the 1007 line")
    assert_no_traceback(srv.log_text())


def test_no_private_attributes_of_the_server_libraries() -> None:
    """The transport relies on public APIs only (issue 15): none of the old reaches."""
    banned = re.compile(r"__self__|_captured_signals|\"close_sent\"|"
                        r"websockets_sansio_impl|protocols\.websockets")
    for path in LIVEHUB.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not banned.search(code), f"{path.name}:{n}: {line.strip()}"


async def test_pipelined_requests_are_answered_in_order(spawn: Spawn) -> None:
    srv = spawn()
    raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[9]}")
    await hello(raw, "Pipeliner")
    burst = b"".join(encode_frame(OP_TEXT, json.dumps({"t": "ping", "id": f"p{i}"}).encode(),
                                  mask=True) for i in range(8))
    raw.writer.write(burst)  # eight requests in one write
    await raw.writer.drain()
    ids: list[str] = []
    while len(ids) < 8:
        frame = await raw.read_frame()
        for line in frame.payload.decode().splitlines():
            reply = json.loads(line)
            if reply.get("t") == "ok":
                ids.append(reply["id"])
    assert ids == [f"p{i}" for i in range(8)]
    raw.abort()
