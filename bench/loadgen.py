"""The client side: worker processes that hold connections, publish and measure.

Each worker is a separate process with its own uvloop. The coordinator
(:mod:`bench.run`) drives the workers over a pipe through three commands:
``connect`` (open its share of listeners and publishers), ``step`` (publish
``count`` posts per room at ``rate`` per second from a common start time, then
wait until every listener has seen its room's last post or the drain time is
up) and ``close``. Every wait is bounded; nothing here runs forever.

Listener bookkeeping per delivery is a regex over the raw frame, an order
check (``n`` must follow the last seen; a jump counts as lost, a repeat as
duplicated) and one histogram increment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench import hist as H
from bench.dialects import DIALECTS, Dialect
from bench.wsclient import WSClient, connect


def raise_nofile() -> int:
    """Raise the open-files limit to the hard limit (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class WorkerConfig:
    index: int
    host: str
    port: int
    dialect: str
    rooms: list[str]
    listeners: list[int]  # global listener indices this worker holds
    per_room: int  # listeners per room (listener i is in room i // per_room)
    publishers: list[int]  # room indices whose publisher this worker holds
    nonce: str
    source_ip: str | None = None
    sample_every: int = 1  # measure latency on every k-th listener (all count deliveries)
    nice: int = 0
    connect_concurrency: int = 200
    connect_timeout: float = 15.0


@dataclass
class Stats:
    hist: list[int] = field(default_factory=H.new)
    max_us: int = 0
    received: int = 0
    gaps: int = 0
    dups: int = 0
    frames: int = 0
    closed: int = 0


class Member:
    """One connection: a listener, or a room's publisher."""

    __slots__ = (
        "acks",
        "close_codes",
        "dialect",
        "errors",
        "find",
        "joined",
        "measure",
        "next_id",
        "publisher",
        "room",
        "stats",
        "ws",
    )

    def __init__(self, dialect: Dialect, room: int, stats: Stats, find: Any, *,
                 publisher: bool, measure: bool) -> None:
        self.dialect = dialect
        self.room = room
        self.stats = stats
        self.find = find
        self.publisher = publisher
        self.measure = measure
        self.next_id = 1
        self.acks = 0
        self.errors = 0
        self.ws: WSClient | None = None
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_codes: list[int | None] = []

    def on_close(self, code: int | None) -> None:
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"closed {code} before welcome"))
        elif not self.publisher:
            self.stats.closed += 1
        self.close_codes.append(code)

    def on_message(self, payload: bytes, opcode: int) -> None:
        if not self.joined.done():
            pong = self.dialect.keepalive(payload)
            if pong is not None and self.ws is not None:
                self.ws.send(pong, self.dialect.opcode)
            elif self.dialect.is_welcome(payload):
                self.joined.set_result(None)
            elif self.dialect.is_refusal(payload):
                self.joined.set_exception(ConnectionError(payload[:200].decode("latin-1")))
            return
        found = self.find(payload)
        if not found:
            if self.publisher:
                ok, err = self.dialect.count_acks(payload)
                self.acks += ok
                self.errors += err
                return
            pong = self.dialect.keepalive(payload)
            if pong is not None and self.ws is not None:
                self.ws.send(pong, self.dialect.opcode)
            return
        if self.publisher:
            ok, err = self.dialect.count_acks(payload)
            self.acks += ok
            self.errors += err
            return
        st = self.stats
        st.frames += 1
        nxt = self.next_id
        got = 0
        if not self.measure:
            for sid, _ in found:
                i = int(sid)
                if i == nxt:
                    nxt += 1
                elif i > nxt:
                    st.gaps += i - nxt
                    nxt = i + 1
                else:  # a repeat, or late from an earlier step
                    st.dups += 1
                    continue
                got += 1
            st.received += got
            self.next_id = nxt
            return
        now = time.time_ns()
        hist = st.hist
        top = st.max_us
        for sid, sts in found:
            i = int(sid)
            if i == nxt:
                nxt += 1
            elif i > nxt:
                st.gaps += i - nxt
                nxt = i + 1
            else:  # a repeat, or late from an earlier step
                st.dups += 1
                continue
            got += 1
            us = (now - int(sts)) // 1000
            if us < 10_000:
                hist[us // 10 if us > 0 else 0] += 1
            else:
                hist[H.bucket(us)] += 1
            if us > top:
                top = us
        st.max_us = top
        st.received += got
        self.next_id = nxt


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.dialect = DIALECTS[cfg.dialect]()
        self.stats = Stats()
        pattern = re.compile(rb"~" + cfg.nonce.encode() + rb"~(\d+)~(\d+)~")
        self.find = pattern.findall
        self.listeners: list[Member] = []
        self.publishers: dict[int, Member] = {}
        self.connect_ms: list[float] = []
        self.connect_errors: list[str] = []

    async def _open(self, member: Member, room: str, name: str, sem: asyncio.Semaphore
                    ) -> None:
        cfg, d = self.cfg, self.dialect
        async with sem:
            started = time.perf_counter()
            try:
                ws = await connect(
                    cfg.host, cfg.port, d.path(room), d.subprotocols, member.on_message,
                    timeout=cfg.connect_timeout, on_close=member.on_close,
                    local_addr=(cfg.source_ip, 0) if cfg.source_ip else None)
                member.ws = ws
                for frame in d.opening():
                    ws.send(frame, d.opcode)
                ws.send(d.hello(room, name), d.opcode)
                await asyncio.wait_for(asyncio.shield(member.joined), cfg.connect_timeout)
                self.connect_ms.append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # counted and reported, never retried
                self.connect_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if member.ws is not None:
                    member.ws.abort()
                member.ws = None

    async def connect_all(self) -> dict[str, Any]:
        cfg = self.cfg
        sem = asyncio.Semaphore(cfg.connect_concurrency)
        started = time.perf_counter()
        tasks = []
        for i in cfg.listeners:
            room = i // cfg.per_room
            m = Member(self.dialect, room, self.stats, self.find, publisher=False,
                       measure=(i % cfg.sample_every == 0))
            self.listeners.append(m)
            tasks.append(self._open(m, cfg.rooms[room], f"L{i}", sem))
        for r in cfg.publishers:
            m = Member(self.dialect, r, self.stats, self.find, publisher=True, measure=False)
            self.publishers[r] = m
            tasks.append(self._open(m, cfg.rooms[r], f"P{r}", sem))
        await asyncio.gather(*tasks)
        self.listeners = [m for m in self.listeners if m.ws is not None]
        return {"connected": len(self.listeners), "publishers": len(
            [m for m in self.publishers.values() if m.ws is not None]),
            "connect_ms": self.connect_ms, "errors": self.connect_errors[:20],
            "n_errors": len(self.connect_errors),
            "seconds": time.perf_counter() - started}

    async def _publish(self, pub: Member, rate: float, first: int, count: int, t0: float,
                       deadline: float) -> dict[str, Any]:
        """``count`` posts numbered from ``first``, the k-th due at ``t0 + k / rate``."""
        d, ws = self.dialect, pub.ws
        nonce = self.cfg.nonce
        sent, lag = 0, 0.0
        if ws is None:
            return {"sent": 0, "lag": 0.0}
        tick = 0.002
        while sent < count:
            now = time.time()
            if now > deadline or ws.closed:
                break
            due = min(count, int((now - t0) * rate) + 1)
            if due <= sent:
                await asyncio.sleep(min(tick, max(0.0, t0 + sent / rate - now)))
                continue
            lag = max(lag, now - (t0 + (due - 1) / rate))
            for k in range(sent, due):
                n = first + k
                ws.send(d.post(f"~{nonce}~{n}~{time.time_ns()}~", f"{nonce}.{n}"), d.opcode)
            sent = due
            await asyncio.sleep(0)
        return {"sent": sent, "lag": lag}

    async def step(self, rate: float, first: int, count: int, t0: float, drain: float
                   ) -> dict[str, Any]:
        self.stats = st = Stats()
        for m in self.listeners:
            m.stats = st
            m.next_id = first  # what an earlier step left undelivered is not this step's
        for m in self.publishers.values():
            m.acks = m.errors = 0
        cpu0 = cpu_seconds()
        await asyncio.sleep(max(0.0, t0 - time.time()))
        duration = count / rate
        deadline = t0 + 2 * duration + 5
        pubs = await asyncio.gather(*(self._publish(p, rate, first, count, t0, deadline)
                                      for p in self.publishers.values()))
        publish_end = time.time()
        last = first + count - 1
        # Every worker drains from the same moment: publishing may go on in another one.
        end = max(time.time(), t0 + duration) + drain
        while time.time() < end:
            if all(m.next_id > last or m.ws is None or m.ws.closed for m in self.listeners):
                break
            await asyncio.sleep(0.02)
        # Acks still in flight are waited for (briefly): they tell what was refused.
        for _ in range(100):  # 2 s at most
            if all(p.acks + p.errors >= r["sent"]
                   for p, r in zip(self.publishers.values(), pubs, strict=True)):
                break
            await asyncio.sleep(0.02)
        tail = sum(max(0, last - (m.next_id - 1)) for m in self.listeners)
        return {
            "hist": st.hist, "max_us": st.max_us, "received": st.received, "gaps": st.gaps,
            "dups": st.dups, "tail": tail, "frames": st.frames, "closed": st.closed,
            "sent": sum(r["sent"] for r in pubs), "lag": max([r["lag"] for r in pubs] or [0]),
            "acks": sum(p.acks for p in self.publishers.values()),
            "errors": sum(p.errors for p in self.publishers.values()),
            "listeners": len(self.listeners), "publish_end": publish_end,
            "cpu": cpu_seconds() - cpu0,
        }

    def close(self) -> None:
        for m in [*self.listeners, *self.publishers.values()]:
            if m.ws is not None and not m.ws.closed:
                m.ws.abort()


async def _serve(pipe: Connection, cfg: WorkerConfig) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(cfg)
    try:
        while True:
            ready = await loop.run_in_executor(None, pipe.poll, 600.0)
            if not ready:
                return  # the coordinator went away: stop by ourselves
            cmd, arg = pipe.recv()
            if cmd == "connect":
                pipe.send(await worker.connect_all())
            elif cmd == "step":
                pipe.send(await worker.step(**arg))
            elif cmd == "cpu":
                pipe.send(cpu_seconds())
            elif cmd == "close":
                return
    finally:
        worker.close()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.2)


def worker_main(pipe: Connection, cfg: WorkerConfig) -> None:
    """Entry point of a client process."""
    import uvloop

    raise_nofile()
    if cfg.nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)
    uvloop.run(_serve(pipe, cfg))
