"""The embedded broker: one process, no services, the default.

A product feature, not a test double: it keeps the same log, sequence and
idempotency rules as the Redis broker, so a single-process conference behaves
exactly like a scaled-out one.
"""

from __future__ import annotations

import secrets
import time
from collections import deque

from livehub.broker.base import Broker, Check, Commit, Event, History, Listener
from livehub.broker.budgets import Counters


class _Log:
    __slots__ = ("events", "seq")

    def __init__(self, maxlen: int) -> None:
        self.seq = 0
        self.events: deque[Event] = deque(maxlen=maxlen)


class MemoryBroker(Broker):
    name = "memory"

    def __init__(self, max_log: int = 100_000) -> None:
        # One epoch per broker: a restarted process has lost its logs.
        self.epoch = secrets.token_hex(8)
        self._max_log = max_log
        self._logs: dict[str, _Log] = {}
        self._listeners: dict[str, Listener] = {}
        self._idem: dict[str, tuple[float, str | None, int]] = {}
        self._online: dict[str, int] = {}
        self._counters = Counters()

    def _log(self, room: str) -> _Log:
        log = self._logs.get(room)
        if log is None:
            log = self._logs[room] = _Log(self._max_log)
        return log

    def _expire_idem(self, now: float) -> None:
        # Keys are inserted in time order, so expired ones sit at the front.
        while self._idem:
            key, (expires, _, _) = next(iter(self._idem.items()))
            if expires > now:
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
            log.events.append(ev)
        if idem is not None:
            self._idem[key] = (now + idem_ttl, idem[1], log.seq)
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
