"""livehub's ``Connection`` as it was before the benchmark work (writer task per connection,
woken by an ``asyncio.Event`` per push), kept for A/B runs under identical load:
``LIVEHUB_BENCH_BASELINE=1`` makes :mod:`bench.lh_serve` serve with it.
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from livehub import metrics
from livehub import room as core
from livehub.auth import Identity
import livehub.hub as _hub
from livehub.hub import MAX_BATCH_BYTES, Send, log
from livehub.protocol import CloseCode, Codec, Frame
from livehub.roles import Role


class BaselineConnection:
    """One client WebSocket: who it is, and its bounded, coalescing send queue."""

    __slots__ = (
        "__dict__",  # room for attributes livehub's Connection gained since (guest_token...)
        "_send",
        "actor",
        "close_code",
        "close_reason",
        "closed",
        "codec",
        "ip",
        "max_queue",
        "queue",
        "replica",
        "wake",
        "writer",
    )

    def __init__(self, send: Send, codec: Codec, identity: Identity, ip: str,
                 max_queue: int) -> None:
        self._send = send
        self.codec = codec
        self.actor = core.Actor(identity.uid, identity.name, identity.role, identity.guest)
        self.ip = ip
        self.max_queue = max_queue
        self.queue: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False
        self.replica: RoomReplica | None = None
        self.writer: asyncio.Task[None] | None = None
        self.guest_token: str | None = None

    @property
    def role(self) -> Role:
        return self.actor.role

    def start(self) -> None:
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def push(self, frame: Frame) -> None:
        if self.close_code is not None:
            return
        if len(self.queue) >= self.max_queue:
            metrics.SLOW_READER_CLOSES.inc()
            log.info("slow reader closed", uid=self.actor.uid, ip=self.ip,
                     room=self.replica.id if self.replica else None)
            self.close(CloseCode.TRY_AGAIN, "send queue overflow: resume with since",
                       discard=True)
            return
        self.queue.append(frame)
        self.wake.set()

    def send(self, obj: dict[str, Any]) -> None:
        self.push(self.codec.frame(obj))

    def close(self, code: int, reason: str = "", *, discard: bool = False) -> None:
        """Close once what is queued has gone (or at once, ``discard``-ing it)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if discard:
                self.queue.clear()
            self.wake.set()

    async def _write(self) -> None:
        key = "bytes" if self.codec.binary else "text"
        queue = self.queue
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while queue:
                    if len(queue) <= _hub.COALESCE_AFTER:
                        data = queue.popleft()
                    else:
                        batch: list[Frame] = []
                        size = 0
                        while queue and size < MAX_BATCH_BYTES:
                            frame = queue.popleft()
                            size += len(frame)
                            batch.append(frame)
                        data = self.codec.join(batch)
                        if len(batch) > 1:
                            metrics.COALESCED_FRAMES.inc()
                    await self._send({"type": "websocket.send", key: data})
                    metrics.FRAMES_SENT.inc()
                if self.close_code is not None:
                    await self._send({"type": "websocket.close", "code": self.close_code,
                                      "reason": self.close_reason[:120]})
                    return
        except Exception as exc:  # the peer went away mid-send; the reader side cleans up
            log.debug("writer stopped", error=repr(exc))
        finally:
            self.closed = True

    async def stop(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
            try:
                await self.writer
            except (asyncio.CancelledError, Exception):
                pass
