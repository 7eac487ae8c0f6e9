"""The embedded broker: one process, no services, the default.

A product feature, not a test double: it keeps the same log, sequence and
idempotency rules as the Redis broker, so a single-process conference behaves
exactly like a scaled-out one.
"""

from __future__ import annotations

import secrets
import time
from collections import deque

import msgspec

from livehub import summary
from livehub.broker.base import Broker, Check, Commit, Event, History, Listener
from livehub.broker.budgets import Counters

_size = msgspec.msgpack.Encoder().encode  # an event's size, as Redis would store it


class _Log:
    """A room's newest events, at most ``max_events`` and ``max_bytes`` of them."""

    __slots__ = ("bytes", "events", "max_bytes", "max_events", "seq", "sizes")

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.seq = 0
        self.events: deque[Event] = deque()
        self.sizes: deque[int] = deque()
        self.bytes = 0
        self.max_events = max_events
        self.max_bytes = max_bytes

    def append(self, ev: Event) -> None:
        n = len(_size(ev))
        self.events.append(ev)
        self.sizes.append(n)
        self.bytes += n
        while len(self.events) > 1 and (len(self.events) > self.max_events
                                        or self.bytes > self.max_bytes):
            self.events.popleft()
            self.bytes -= self.sizes.popleft()


class MemoryBroker(Broker):
    name = "memory"

    def __init__(self, max_log: int = 100_000, *, max_log_bytes: int = 64 * 1024 * 1024,
                 max_idem: int = 100_000) -> None:
        # One epoch per broker: a restarted process has lost its logs.
        self.epoch = secrets.token_hex(8)
        self._max_log = max_log
        self._max_log_bytes = max_log_bytes
        self._max_idem = max_idem  # keys kept at most: the oldest go first beyond it
        self._logs: dict[str, _Log] = {}
        self._summaries: dict[str, dict[str, str]] = {}
        self._listeners: dict[str, Listener] = {}
        self._idem: dict[str, tuple[float, str | None, int]] = {}
        self._online: dict[str, int] = {}
        self._counters = Counters()

    def _log(self, room: str) -> _Log:
        log = self._logs.get(room)
        if log is None:
            log = self._logs[room] = _Log(self._max_log, self._max_log_bytes)
        return log

    def _expire_idem(self, now: float) -> None:
        # Keys are inserted in time order, so expired ones sit at the front; past
        # max_idem the oldest go too (a retry that late is answered as a new request).
        while self._idem:
            key, (expires, _, _) = next(iter(self._idem.items()))
            if expires > now and len(self._idem) <= self._max_idem:
                break
            del self._idem[key]

    async def commit(
        self, room: str, events: list[Event], *, idem: tuple[str, str] | None = None,
        idem_ttl: int = 600, checks: tuple[Check, ...] = (),
    ) -> Commit:
        log = self._log(room)
        now = time.monotonic()
        if idem is not None:
            self._expire_idem(now)
            key = f"{room}\x00{idem[0]}"
            seen = self._idem.get(key)
            if seen is not None:
                return Commit(seq=seen[2], epoch=self.epoch, ref=seen[1], duplicate=True)
        if checks:
            now_ms = now * 1000
            refused = self._counters.refusal(room, checks, now_ms)
            if refused is not None:
                return Commit(seq=log.seq, epoch=self.epoch, refused=refused[0],
                              retry_ms=refused[1])
            self._counters.record(room, checks, now_ms)
        for ev in events:
            log.seq += 1
            ev["seq"] = log.seq
            log.append(ev)
        if events:
            record = self._summaries.setdefault(room, {})
            summary.apply(record, summary.delta(events))
            record["seq"] = str(log.seq)
        if idem is not None:
            self._idem[key] = (now + idem_ttl, idem[1], log.seq)
            self._expire_idem(now)
        listener = self._listeners.get(room)
        if listener is not None and events:
            listener.on_events(room, self.epoch, events)
        return Commit(seq=log.seq, epoch=self.epoch, ref=idem[1] if idem else None)

    async def take(self, room: str, key: str, limit: int, window_ms: int) -> bool:
        return self._counters.take(room, key, limit, window_ms, time.monotonic() * 1000)

    async def recall(self, room: str, key: str) -> Commit | None:
        self._expire_idem(time.monotonic())
        seen = self._idem.get(f"{room}\x00{key}")
        if seen is None:
            return None
        return Commit(seq=seen[2], epoch=self.epoch, ref=seen[1], duplicate=True)

    async def read(self, room: str, after: int = 0, limit: int | None = None) -> History:
        log = self._logs.get(room)
        if log is None:
            return History(self.epoch, 0, [], complete=after == 0)
        evs = log.events
        first = evs[0]["seq"] if evs else log.seq + 1
        complete = after + 1 >= first
        start = max(0, after + 1 - first)
        out = [evs[i] for i in range(start, len(evs))]
        if limit is not None:
            out = out[:limit]
        return History(self.epoch, log.seq, out, complete)

    async def summaries(self, rooms: list[str]) -> dict[str, dict[str, str]]:
        return {room: dict(self._summaries.get(room, {})) for room in rooms}

    async def subscribe(self, room: str, listener: Listener) -> None:
        self._listeners[room] = listener

    async def unsubscribe(self, room: str) -> None:
        self._listeners.pop(room, None)

    async def set_online(self, room: str, count: int) -> None:
        if count:
            self._online[room] = count
        else:
            self._online.pop(room, None)

    async def online(self, rooms: list[str]) -> dict[str, int]:
        return {room: self._online.get(room, 0) for room in rooms}
