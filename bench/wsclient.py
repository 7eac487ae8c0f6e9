"""A minimal WebSocket client on a raw asyncio protocol, for the load generator.

The harness must not be the bottleneck on a 2-core box, so the client does the
least a client can: one HTTP upgrade, then a frame parser that hands each
complete message (bytes) to a callback. It answers pings and closes, sends
masked frames with an all-zero masking key (RFC 6455 requires the mask bit,
not a random key: servers cannot tell, and XOR with zero costs nothing), and
never validates ``Sec-WebSocket-Accept``. Not for production use.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import Any

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_ZERO_MASK = b"\x00\x00\x00\x00"

OnMessage = Callable[[bytes, int], None]


def encode_frame(payload: bytes, opcode: int) -> bytes:
    """One masked client frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + _ZERO_MASK + payload


class WSClient(asyncio.Protocol):
    """One client connection. ``on_message(payload, opcode)`` gets each message."""

    __slots__ = (
        "_buf", "_frag", "_frag_op", "_handshaken", "_request", "close_code", "closed",
        "on_close", "on_message", "opened", "transport",
    )

    def __init__(self, host: str, port: int, path: str, subprotocols: list[str],
                 on_message: OnMessage, on_close: Callable[[int | None], None] | None = None
                 ) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.on_message = on_message
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshaken = False
        self._buf = b""
        self._frag: list[bytes] = []
        self._frag_op = 0
        self.closed = False
        self.close_code: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc!r}"))
        if self.on_close is not None:
            self.on_close(self.close_code)

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._handshaken:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            status = data[:data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                assert self.transport is not None
                self.transport.close()
                return
            self._handshaken = True
            if not self.opened.done():
                self.opened.set_result(None)
            data = data[end + 4:]
        self._parse(data)

    # -- frames ---------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        pos, size = 0, len(data)
        on_message = self.on_message
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(data[pos + 2:pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            end = pos + head + n
            if end > size:
                break
            payload = data[pos + head:end]
            if masked:  # servers must not mask; unmask anyway
                mask = data[pos + head - 4:pos + head]
                payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
            pos = end
            opcode = b0 & 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if b0 & 0x80:
                    on_message(payload, opcode)
                else:
                    self._frag, self._frag_op = [payload], opcode
            elif opcode == OP_CONT:
                self._frag.append(payload)
                if b0 & 0x80:
                    whole, self._frag = b"".join(self._frag), []
                    on_message(whole, self._frag_op)
            elif opcode == OP_PING:
                self._write(encode_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._write(encode_frame(payload[:2], OP_CLOSE))
                if self.transport is not None:
                    self.transport.close()
                return
        if pos < size:
            self._buf = data[pos:]

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        self._write(encode_frame(payload, opcode))

    def close(self, code: int = 1000) -> None:
        self._write(encode_frame(code.to_bytes(2, "big"), OP_CLOSE))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(host: str, port: int, path: str, subprotocols: list[str],
                  on_message: OnMessage, *, timeout: float = 10.0,
                  local_addr: tuple[str, int] | None = None,
                  on_close: Callable[[int | None], None] | None = None) -> WSClient:
    """Open a connection and finish the upgrade, within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()

    def factory() -> WSClient:
        return WSClient(host, port, path, subprotocols, on_message, on_close)

    async def go() -> WSClient:
        _, proto = await loop.create_connection(factory, host, port, local_addr=local_addr)
        await proto.opened
        return proto

    return await asyncio.wait_for(go(), timeout)
