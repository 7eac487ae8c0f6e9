"""Slow readers: a client that never reads neither slows its room nor grows the server.

The same publisher and observers publish thousands of events in paced batches, in
runs without and with slow readers (clients that never read a byte: raw sockets with
tiny receive buffers), alternated so that load from outside the test hits both alike.
Compared: the observers' delivery latency (median and 90th percentile, as ratios) and
the server's RSS across the runs. The slow readers' bounded send queues overflow and
they are closed 1013; when one finally reads, it finds that close after a bounded
amount of data. Keepalive is off here, so the queue bound alone is what is shown.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import msgpack

from tests.hardening.conftest import ROOMS, Logged, Spawn, assert_no_traceback, eventually, rss
from tests.hardening.rawws import OP_TEXT, RawWebSocket
from tests.support import Client

EVENTS = 1000  # per run: enough to fill the kernel's socket buffers (MiBs on loopback)
PAIRS = 3  # runs without and with slow readers, alternated so that outside load hits both
BATCH = 25  # posts in flight at once; the next batch waits for every observer
SEND_QUEUE = 64
SLOW_READERS = 4
PAD = "\N{SNAIL}" * 1900  # 7.6 kB of UTF-8 in 1900 code points
MIB = 1024 * 1024


class Observer:
    """A client that reads everything, noting when each tagged post arrives."""

    def __init__(self, client: Client, run: str) -> None:
        self.client = client
        self.run = run
        self.seen: dict[int, float] = {}
        self.last = -1
        self.target = 0
        self.reached = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for data in self.client.ws:
            now = time.perf_counter()
            if isinstance(data, bytes):
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(data)
                events: list[dict[str, Any]] = list(unpacker)
            else:
                events = [json.loads(line) for line in data.split("\n") if line]
            for ev in events:
                if ev.get("t") != "msg":
                    continue
                run, _, rest = ev["text"].partition("|")
                if run != self.run:
                    continue
                i = int(rest.partition("|")[0])
                self.seen[i] = now
                self.last = max(self.last, i)
            if self.last >= self.target:
                self.reached.set()

    async def wait_for(self, i: int, timeout: float = 20.0) -> None:
        self.target = i
        if self.last < i:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), timeout)


async def publish_run(srv: Logged, slug: str, run: str, events: int = EVENTS
                      ) -> tuple[list[float], int]:
    """Publish ``events`` posts; (every observer's latency per post in s, peak RSS)."""
    assert srv.proc is not None
    pid = srv.proc.pid
    observers = [Observer(await Client.join(srv.ws_url, slug, codec, name=f"Obs {n}"), run)
                 for n, codec in enumerate(["json", "msgpack", "json"])]
    publisher = await Client.join(srv.ws_url, slug, "msgpack", name="Publisher")
    drain = Observer(publisher, run)  # the publisher reads its own stream too
    sent: dict[int, float] = {}
    peak = 0
    for start in range(0, events, BATCH):
        for i in range(start, min(start + BATCH, events)):
            sent[i] = time.perf_counter()
            await publisher.send({"t": "post", "text": f"{run}|{i}|{PAD}"})
        last = min(start + BATCH, events) - 1
        await asyncio.gather(*(o.wait_for(last) for o in [*observers, drain]))
        peak = max(peak, rss(pid))
    latencies = [o.seen[i] - sent[i] for o in observers for i in range(events)]
    for o in [*observers, drain]:
        await o.client.close()
        await asyncio.wait_for(o.task, 5)
    return latencies, peak


def summary(lat: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(lat, n=10)
    return statistics.median(lat), q[8]


async def test_a_reader_that_never_reads_costs_its_room_nothing(spawn: Spawn) -> None:
    # No keepalive, so the queue bound alone deals with the slow readers; a short room log,
    # so that RSS shows connection state rather than the in-memory log growing.
    srv = spawn({"LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_GUEST_ADDRESS_RATE": "0",
                 "LIVEHUB_SEND_QUEUE": str(SEND_QUEUE),
                 "LIVEHUB_PING_INTERVAL": "0", "LIVEHUB_MAX_LOG": "100",
                 "LIVEHUB_ROOM_LINGER": "0"})
    assert srv.proc is not None
    pid = srv.proc.pid
    await publish_run(srv, ROOMS[0], "warm", 300)
    start_rss = peak = rss(pid)
    after_pair: list[int] = []
    base: list[float] = []
    with_slow: list[float] = []
    for k in range(PAIRS):
        # The same two rooms every time: what stays per room (its log) is counted once.
        lat, top = await publish_run(srv, ROOMS[1], f"base{k}")
        base += lat
        peak = max(peak, top)
        mark = srv.mark()
        slow = [await RawWebSocket.connect(srv.port, f"/ws/{ROOMS[2]}", rcvbuf=2048,
                                           limit=1024) for _ in range(SLOW_READERS)]
        for s in slow:
            await s.send_frame(OP_TEXT, json.dumps({"t": "hello", "name": "Snail"}).encode())
        lat, top = await publish_run(srv, ROOMS[2], f"slow{k}")
        with_slow += lat
        peak = max(peak, top)
        # Every slow reader overflowed its queue and was closed 1013, logged once each.
        await eventually(lambda m=mark: sum("slow reader closed" in ln  # type: ignore[misc]
                                            for ln in srv.lines_since(m)) >= SLOW_READERS)
        assert sum("slow reader closed" in ln for ln in srv.lines_since(mark)) == SLOW_READERS
        # Reading at last, each finds a bounded amount of data and then the 1013 close.
        for s in slow:
            close, frames = await s.read_until_close(timeout=10)
            assert close is not None and close.close_code == 1013, close
            assert "since" in close.close_reason
            got = sum(len(f.payload) for f in frames)
            assert got < 8 * MIB, f"{got} bytes reached a reader that never read"
            s.abort()
        after_pair.append(rss(pid))
    end_rss = rss(pid)

    (b_med, b_p90), (s_med, s_p90) = summary(base), summary(with_slow)
    growth = max(peak, end_rss) - start_rss
    later = end_rss - after_pair[0]
    report = (f"{PAIRS}x{EVENTS} events to 3 observers, without and with {SLOW_READERS} "
              f"slow readers: median latency {b_med * 1e3:.2f} -> {s_med * 1e3:.2f} ms "
              f"(ratio {s_med / b_med:.2f}), p90 {b_p90 * 1e3:.2f} -> {s_p90 * 1e3:.2f} ms "
              f"(ratio {s_p90 / b_p90:.2f}); RSS {start_rss / MIB:.1f} MiB after warm-up, "
              f"peak growth {growth / MIB:.1f} MiB, after each pair "
              f"{[round(r / MIB, 1) for r in after_pair]} MiB")
    print(report)
    assert s_med / b_med < 3, report
    assert growth < 40 * MIB, report
    assert later < 10 * MIB, "RSS keeps growing with the events published: " + report
    assert srv.metric("livehub_slow_reader_closes_total") == PAIRS * SLOW_READERS
    assert_no_traceback(srv.log_text())
