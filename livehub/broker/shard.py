"""One sharded pub/sub connection (``SSUBSCRIBE``) to one Redis Cluster node.

In subscribed mode replies carry no id, so the connection keeps a FIFO of the
commands it sent (``SSUBSCRIBE``, ``SUNSUBSCRIBE``, ``PING``) and pairs each reply
with the oldest. Two kinds of frame are not replies: ``smessage`` (an event), and a
``sunsubscribe`` the node sends by itself when the channel's slot is no longer its
own (a failover or a slot migration): that one is told apart from the answer to our
own ``SUNSUBSCRIBE`` by the FIFO, and reported as a lost channel.

The connection proves it is alive the way the single-Redis subscriber does: after
``health_interval`` of silence it PINGs and needs some reply within
``health_timeout``. Whatever ends it, ``on_lost(shard, None)`` is called once
(unless :meth:`close` ended it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

Addr = tuple[str, int]


class ShardDeaf(Exception):
    """The node stopped answering."""


class Shard:
    def __init__(
        self, addr: Addr, conn: Connection, *,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[Shard, bytes | None], None],
        health_interval: float, health_timeout: float,
    ) -> None:
        self.addr = addr
        self._conn = conn
        self._on_message = on_message
        self._on_lost = on_lost
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        # (command, channel, waiter): one entry per reply still to come, in send order.
        self._pending: deque[tuple[bytes, bytes, asyncio.Future[None] | None]] = deque()
        self._send_lock = asyncio.Lock()
        self._rx = asyncio.Event()
        self._last_rx = 0.0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.alive = False

    @classmethod
    async def open(
        cls, addr: Addr, *, connect_within: float, on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[Shard, bytes | None], None], health_interval: float,
        health_timeout: float, **conn_kwargs: Any,
    ) -> Shard:
        """Connect to ``addr`` (within ``connect_within`` s) and start reading."""
        conn = Connection(host=addr[0], port=addr[1], **conn_kwargs)
        try:
            await asyncio.wait_for(conn.connect(), connect_within)  # type: ignore[no-untyped-call]
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            raise
        shard = cls(addr, conn, on_message=on_message, on_lost=on_lost,
                    health_interval=health_interval, health_timeout=health_timeout)
        shard.alive = True
        shard._last_rx = asyncio.get_running_loop().time()
        shard._task = asyncio.create_task(shard._run(), name=f"livehub-shard-{addr[1]}")
        return shard

    async def close(self) -> None:
        """Stop reading and disconnect (``on_lost`` is not called)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # --- requests -----------------------------------------------------------

    async def _send(self, entries: list[tuple[bytes, bytes, asyncio.Future[None] | None]],
                    commands: list[tuple[Any, ...]]) -> None:
        if not self.alive or not self._conn.is_connected:
            raise ConnectionError(f"shard connection to {self.addr} is down")
        async with self._send_lock:  # FIFO order = wire order
            self._pending.extend(entries)
            await self._conn.send_packed_command(self._conn.pack_commands(commands),
                                                 check_health=False)

    async def ssubscribe(self, channels: list[bytes]) -> list[BaseException | None]:
        """SSUBSCRIBE each channel (one command each: a command's channels must share a
        slot); per channel, None once the node confirmed it, else the error it answered.
        """
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = [loop.create_future() for _ in channels]
        try:
            await self._send([(b"ssubscribe", ch, w) for ch, w in zip(channels, waits,
                                                                      strict=True)],
                             [("SSUBSCRIBE", ch) for ch in channels])
            done = await asyncio.gather(*waits, return_exceptions=True)
        finally:
            # A waiter given up keeps its place in the FIFO: its reply still comes.
            for w in waits:
                if not w.done():
                    w.cancel()
        return [d if isinstance(d, BaseException) else None for d in done]

    async def sunsubscribe(self, channel: bytes) -> None:
        await self._send([(b"sunsubscribe", channel, None)], [("SUNSUBSCRIBE", channel)])

    # --- reading --------------------------------------------------------------

    async def _run(self) -> None:
        reader = asyncio.create_task(self._read_loop(), name=f"livehub-shard-rx-{self.addr[1]}")
        try:
            await self._watch(reader)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                log.warning("redis cluster: shard %s:%d down: %s: %s", *self.addr,
                            type(exc).__name__, exc)
        finally:
            self.alive = False
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            while self._pending:
                _, _, waiter = self._pending.popleft()
                if waiter is not None and not waiter.done():
                    waiter.set_exception(ConnectionError("shard connection lost"))
            with contextlib.suppress(Exception):
                await self._conn.disconnect(nowait=True)
            if not self._closing:
                self._on_lost(self, None)

    async def _watch(self, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if await _wait_any(reader, None, self._health_interval):
                return reader.result()  # raises what ended the reader
            if loop.time() - self._last_rx < self._health_interval:
                continue  # traffic is proof enough
            self._rx.clear()
            await asyncio.wait_for(self._send([(b"pong", b"", None)], [("PING",)]),
                                   self._health_timeout)
            if await _wait_any(reader, self._rx, self._health_timeout):
                return reader.result()
            if not self._rx.is_set():
                raise ShardDeaf(f"no reply to PING within {self._health_timeout}s")

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await self._conn.read_response(timeout=math.inf)
            except ResponseError as exc:  # MOVED, CROSSSLOT...: the answer to the oldest
                self._mark_rx(loop)
                if self._pending:
                    _, _, waiter = self._pending.popleft()
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(exc)
                continue
            self._mark_rx(loop)
            if not isinstance(msg, list) or len(msg) < 2:
                continue
            kind = msg[0]
            if kind == b"smessage" and len(msg) >= 3:
                self._on_message(msg[1], msg[2])
                continue
            head = self._pending[0] if self._pending else None
            if kind == b"sunsubscribe" and not (
                head is not None and head[0] == kind and head[1] == msg[1]
            ):
                self._on_lost(self, msg[1])  # the node dropped it: its slot moved
                continue
            if head is not None and head[0] == kind and (kind == b"pong" or head[1] == msg[1]):
                self._pending.popleft()
                if head[2] is not None and not head[2].done():
                    head[2].set_result(None)

    def _mark_rx(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last_rx = loop.time()
        self._rx.set()


async def _wait_any(reader: asyncio.Task[None], event: asyncio.Event | None,
                    within: float) -> bool:
    """Wait for ``event`` (if any) or the reader's end, up to ``within`` s; True if it ended."""
    waiter = asyncio.ensure_future(event.wait()) if event is not None else None
    try:
        await asyncio.wait({reader, *([waiter] if waiter else [])}, timeout=within,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        if waiter is not None:
            waiter.cancel()
    return reader.done()
