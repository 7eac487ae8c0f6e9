"""Per-message compression: off unless configured, and bounded when it is on.

Off: the handshake answer has no ``Sec-WebSocket-Extensions`` even when a client
offers ``permessage-deflate``, and a compressed (RSV1) frame is a protocol error.
On (``LIVEHUB_COMPRESSION=1``): a decompression bomb (a small frame that inflates
far past the frame limit) closes 1009 without the server's memory following it.
"""

from __future__ import annotations

import json
import zlib

import msgpack
import websockets

from tests.hardening.conftest import ROOMS, Spawn, assert_no_traceback, eventually, rss
from tests.hardening.rawws import OP_BINARY, OP_TEXT, RawWebSocket
from tests.support import Client

OFFER = "permessage-deflate; client_max_window_bits; server_max_window_bits=12"
MIB = 1024 * 1024


def deflate(data: bytes, wbits: int = 12) -> bytes:
    """One message compressed as RFC 7692 says: raw deflate, sync flush, tail removed."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


async def test_compression_is_off_by_default_even_when_offered(spawn: Spawn) -> None:
    srv = spawn()
    mark = srv.mark()
    raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[0]}", extensions=OFFER)
    assert raw.header("Sec-WebSocket-Extensions") is None
    assert raw.header("Sec-WebSocket-Protocol") == "livehub.v1.json"
    await raw.send_text(json.dumps({"t": "hello", "name": "Raw"}))
    assert (await raw.read_frame()).rsv1 is False
    # A compressed frame that was never negotiated is a protocol error, not inflated.
    await raw.send_frame(OP_TEXT, deflate(b'{"t":"ping"}'), rsv1=True)
    close, _ = await raw.read_until_close()
    assert close is not None and close.close_code == 1002
    # A real client that offers deflate is answered without it, and works.
    ws = await websockets.connect(f"{srv.ws_url}/ws/{ROOMS[0]}", compression="deflate",
                                  subprotocols=["livehub.v1.json"])  # type: ignore[list-item]
    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    client = Client(ws, "json")
    await client.hello(name="Polite")
    assert (await client.request({"t": "post", "text": "plain frames"}))["t"] == "ok"
    await client.close()
    await eventually(lambda: any("protocol error" in ln for ln in srv.lines_since(mark)))
    assert_no_traceback(srv.log_text())


async def test_enabled_compression_works_and_a_bomb_closes_1009(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_COMPRESSION": "1", "LIVEHUB_MAX_FRAME": "65536"})
    assert srv.proc is not None
    # Enabled: negotiated, and an ordinary compressed conversation works.
    ws = await websockets.connect(f"{srv.ws_url}/ws/{ROOMS[1]}", compression="deflate",
                                  subprotocols=["livehub.v1.msgpack"])  # type: ignore[list-item]
    assert ws.response is not None
    offered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    assert offered.startswith("permessage-deflate")
    client = Client(ws, "msgpack")
    await client.hello(name="Squeezed")
    ok = await client.request({"t": "post", "text": "compressible " * 150})
    assert ok["t"] == "ok"
    # The bomb: under 64 KiB on the wire, 48 MiB inflated. Sent by a raw client, as
    # well-formed permessage-deflate with the negotiated 4 KiB window.
    bomb = deflate(b" " * (48 * MIB))
    assert len(bomb) < 64 * 1024
    before = rss(srv.proc.pid)
    mark = srv.mark()
    for opcode in (OP_TEXT, OP_BINARY):
        raw = await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[1]}", extensions=OFFER,
                                         subprotocol="livehub.v1.msgpack")
        assert (raw.header("Sec-WebSocket-Extensions") or "").startswith("permessage-deflate")
        hello = msgpack.packb({"t": "hello", "name": "Bomb"})
        await raw.send_frame(OP_BINARY, deflate(hello), rsv1=True)
        await raw.send_frame(opcode, bomb, rsv1=True)
        close, _ = await raw.read_until_close()
        assert close is not None and close.close_code == 1009, close
    grown = rss(srv.proc.pid) - before
    print(f"RSS growth over two 48 MiB bombs: {grown / MIB:.1f} MiB")
    assert grown < 16 * MIB, f"the server grew {grown / MIB:.1f} MiB"
    # The room and the compressed client carry on.
    assert (await client.request({"t": "post", "text": "still here"}))["t"] == "ok"
    await client.close()
    await eventually(lambda: sum("size limit" in ln for ln in srv.lines_since(mark)) >= 2)
    assert_no_traceback(srv.log_text())
