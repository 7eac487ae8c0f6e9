"""A deliberately crude WebSocket client over a plain socket, for misbehaving on purpose.

It lets a test choose the socket's receive buffer, stop reading, ignore pings,
offer extensions, and send frames no polite client would (compressed bombs,
invalid UTF-8 in text frames). Nothing here is clever: one frame at a time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class RawFrame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv1: bool = False

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode(errors="replace")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False,
                 mask: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask(
        payload, key)
    return bytes(head) + key + body


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


class RawWebSocket:
    """One WebSocket over a socket whose buffers the test controls."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 response: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.response = response  # the raw handshake answer, headers and all

    @classmethod
    async def connect(cls, port: int, path: str, *, subprotocol: str | None = "livehub.v1.json",
                      extensions: str | None = None, rcvbuf: int | None = None,
                      headers: dict[str, str] | None = None, limit: int = 2**16,
                      timeout: float = 5.0) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small reader ``limit`` keeps the client's own user-space buffer small too: the
        # stream stops reading the socket once it holds about twice that.
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
                 "Sec-WebSocket-Version: 13"]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not response.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(response.split(b"\r\n", 1)[0].decode(errors="replace"))
        return cls(reader, writer, response)

    def header(self, name: str) -> str | None:
        for line in self.response.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    async def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True,
                         rsv1: bool = False) -> None:
        self.writer.write(encode_frame(opcode, payload, fin=fin, rsv1=rsv1))
        await self.writer.drain()

    async def send_text(self, text: str | bytes) -> None:
        await self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    async def read_frame(self, timeout: float = 5.0) -> RawFrame:
        """The next frame; raises EOFError when the server has closed the TCP connection."""
        async def read() -> RawFrame:
            try:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                payload = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise EOFError("server closed the connection") from exc
            return RawFrame(b0 & 0x0F, payload, bool(b0 & 0x80), bool(b0 & 0x40))
        return await asyncio.wait_for(read(), timeout)

    async def read_until_close(self, timeout: float = 10.0, *, answer_pings: bool = False
                               ) -> tuple[RawFrame | None, list[RawFrame]]:
        """Read until a close frame or EOF: (the close frame or None, every frame before)."""
        deadline = time.monotonic() + timeout
        seen: list[RawFrame] = []
        while True:
            try:
                frame = await self.read_frame(max(0.01, deadline - time.monotonic()))
            except EOFError:
                return None, seen
            if frame.opcode == OP_CLOSE:
                return frame, seen
            if frame.opcode == OP_PING and answer_pings:
                await self.send_frame(OP_PONG, frame.payload)
            seen.append(frame)

    async def wait_eof(self, timeout: float) -> list[RawFrame]:
        """Read (answering nothing) until the server drops the TCP connection."""
        deadline = time.monotonic() + timeout
        seen: list[RawFrame] = []
        while True:
            try:
                seen.append(await self.read_frame(max(0.01, deadline - time.monotonic())))
            except EOFError:
                return seen

    def abort(self) -> None:
        transport = self.writer.transport
        transport.abort()
