"""Watched words and reactions under load (issue 21): two bounded, loopback-only runs.

``words``: a post's commit latency (request to ``ok``) with 10 and with 10,000
watched entries in the programme, one poster, posts of 30 words that match no
entry (the matcher must read every word).

``storm``: 1,000 clients in one room, each reacting once to one post within a
second, while one more client posts every 20 ms. Reports the ``reactions``
events each client got (the coalescing rule bounds them by N/2 for N changes;
one per window in practice) and the poster's commit latency p50/p99 with and
without the storm.

    python -m bench.moderation [--posts 400] [--clients 1000] [--json]

Everything goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

from bench.servers import Server
from livehub.watchwords import Matcher

ROOM = "bench-room"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _programme(path: Path, entries: int) -> Path:
    rng = random.Random(entries)
    words = ["".join(rng.choices(LETTERS, k=9)) for _ in range(entries)]
    half = entries // 2
    block = [*words[:half // 2], *(w + "*" for w in words[half // 2:half])]
    hold = [f"{a} {b}" for a, b in zip(words[half::2], words[half + 1::2], strict=False)]
    hold += words[half:half + (entries - half - len(hold))]
    path.write_text(
        '[conference]\ntitle = "Bench"\n\n[watched_words]\n'
        f"block = {json.dumps(block)}\nhold = {json.dumps(hold)}\n\n"
        f'[[session]]\nslug = "{ROOM}"\ntitle = "Bench room"\n')
    return path


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(_pct(values, 0.5) * 1000, 2), "p99": round(_pct(values, 0.99) * 1000, 2)}


class Peer:
    """A JSON protocol client that answers requests and counts events by type."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}
        self.ids = 0
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, url: str, name: str) -> Peer:
        ws = await websockets.connect(url, subprotocols=["livehub.v1.json"],  # type: ignore[list-item]
                                      open_timeout=30, max_size=2**22, compression=None)
        await ws.send(json.dumps({"t": "hello", "name": name}))
        while True:
            frame = await asyncio.wait_for(ws.recv(), 30)
            if any(json.loads(line)["t"] == "welcome" for line in str(frame).split("\n") if line):
                break
        peer = cls(ws)
        peer.reader = asyncio.get_running_loop().create_task(peer._read())
        return peer

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                for line in str(frame).split("\n"):
                    if not line:
                        continue
                    ev = json.loads(line)
                    fut = self.waiting.pop(ev.get("id"), None) if "id" in ev else None
                    if fut is not None and not fut.done():
                        fut.set_result(ev)
                    self.counts[ev["t"]] = self.counts.get(ev["t"], 0) + 1
        except websockets.ConnectionClosed:
            pass

    async def request(self, frame: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        self.ids += 1
        rid = f"b{self.ids}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = fut
        await self.ws.send(json.dumps({**frame, "id": rid}))
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader


def _server(workdir: Path, programme: Path) -> Server:
    return Server("livehub", [ROOM], workdir, env={
        "LIVEHUB_PROGRAMME": str(programme), "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "LIVEHUB_GUEST_ADDRESS_RATE": "0", "LIVEHUB_GUEST_VOTES_PER_ADDRESS": "0",
        "LIVEHUB_GUEST_NAMES_PER_HOUR": "0",
    }).start()


async def _post_latencies(peer: Peer, posts: int, gap: float = 0.0) -> list[float]:
    rng = random.Random(1)
    out = []
    for i in range(posts):
        text = " ".join("".join(rng.choices(LETTERS, k=rng.randint(3, 10))) for _ in range(30))
        started = time.perf_counter()
        ok = await peer.request({"t": "post", "text": f"{i} {text}"})
        out.append(time.perf_counter() - started)
        assert ok["t"] == "ok" and not ok.get("held"), ok
        if gap:
            await asyncio.sleep(gap)
    return out


def _matcher_us(entries: int) -> float:
    """Median microseconds of one in-process check of a 30-word text."""
    with tempfile.TemporaryDirectory() as tmp:
        from livehub.programme import load_programme

        matcher: Matcher = load_programme(_programme(Path(tmp) / "m.toml", entries)).matcher(ROOM)
    rng = random.Random(3)
    texts = [" ".join("".join(rng.choices(LETTERS, k=rng.randint(3, 10))) for _ in range(30))
             for _ in range(200)]
    times = []
    for _ in range(10):
        for text in texts:
            started = time.perf_counter()
            matcher.check(text)
            times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)


async def words(posts: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    checks = {f"entries_{n}": _matcher_us(n) for n in (10, 10_000)}
    for entries in (10, 10_000):
        with tempfile.TemporaryDirectory() as tmp:
            server = _server(Path(tmp), _programme(Path(tmp) / "words.toml", entries))
            try:
                url = f"ws://127.0.0.1:{server.port}/ws/{ROOM}"
                peer = await Peer.join(url, "Poster")
                await _post_latencies(peer, 50)  # warm up
                result[f"entries_{entries}"] = _ms(await _post_latencies(peer, posts))
                await peer.close()
            finally:
                server.stop()
    return {"scenario": "words", "posts": posts, "commit_latency_ms": result,
            "matcher_check_us": checks}


async def storm(clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = _server(Path(tmp), _programme(Path(tmp) / "storm.toml", 10))
        try:
            url = f"ws://127.0.0.1:{server.port}/ws/{ROOM}"
            poster = await Peer.join(url, "Poster")
            mid = (await poster.request({"t": "post", "text": "react to me"}))["mid"]
            started = time.perf_counter()
            # The crowd runs in a process of its own, so the poster's latency is the
            # server's, not this event loop's.
            crowd = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.moderation", "--crowd", url, mid, str(clients),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert crowd.stdin is not None and crowd.stdout is not None

            async def crowd_says() -> dict[str, Any]:
                assert crowd.stdout is not None
                line = await asyncio.wait_for(crowd.stdout.readline(), 120)
                said: dict[str, Any] = json.loads(line)
                return said

            await crowd_says()  # everyone joined
            connect_s = time.perf_counter() - started
            quiet = await _post_latencies(poster, 100, gap=0.02)
            # 1. The storm alone: N changes within a second, no other event between them.
            crowd.stdin.write(b"clap\n")
            storm = await crowd_says()
            got = storm["counts"]
            storm_s = storm["seconds"]
            # 2. Again (another emoji) while the poster posts every 20 ms: each post
            # flushes the pending counts first, so clients get more, smaller batches.
            crowd.stdin.write(b"heart\n")
            busy = await _post_latencies(poster, 100, gap=0.02)
            mixed = (await crowd_says())["counts"]
            crowd.stdin.close()
            await asyncio.wait_for(crowd.wait(), 60)
            await poster.close()
        finally:
            server.stop()
    return {
        "scenario": "storm", "clients": clients, "connect_s": round(connect_s, 1),
        "reactions": clients, "storm_s": round(storm_s, 2),
        "reactions_events_per_client": {"max": max(got), "min": min(got),
                                         "mean": round(statistics.mean(got), 2),
                                         "bound_n_over_2": clients // 2},
        "reactions_events_per_client_with_posts": {"max": max(mixed), "min": min(mixed)},
        "other_post_latency_ms": {"quiet": _ms(quiet), "during_storm": _ms(busy)},
    }


async def crowd_process(url: str, mid: str, clients: int) -> None:
    """The storm's crowd: join, then react within a second on each line read from stdin."""
    crowd: list[Peer] = []
    for i in range(0, clients, 50):
        crowd += await asyncio.gather(*(Peer.join(url, f"Fan {j}")
                                        for j in range(i, min(clients, i + 50))))
    print(json.dumps({"joined": len(crowd)}), flush=True)
    rng = random.Random(2)
    loop = asyncio.get_running_loop()

    async def fan(peer: Peer, delay: float, emoji: str) -> None:
        await asyncio.sleep(delay)
        ok = await peer.request({"t": "react", "mid": mid, "emoji": emoji})
        assert ok["t"] == "ok", ok

    for _ in range(2):  # bounded: two storms
        emoji = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not emoji:
            break
        before = [p.counts.get("reactions", 0) for p in crowd]
        started = time.perf_counter()
        await asyncio.gather(*(fan(p, rng.random(), emoji) for p in crowd))
        seconds = round(time.perf_counter() - started, 2)
        await asyncio.sleep(2.0)  # the last coalescing window
        counts = [p.counts.get("reactions", 0) - b for p, b in zip(crowd, before, strict=True)]
        print(json.dumps({"seconds": seconds, "counts": counts}), flush=True)
    for p in crowd:
        await p.close()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--crowd":
        asyncio.run(crowd_process(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=("words", "storm", "both"), default="both")
    ap.add_argument("--posts", type=int, default=400)
    ap.add_argument("--clients", type=int, default=1000)
    args = ap.parse_args()
    if args.scenario in ("words", "both"):
        print(json.dumps(asyncio.run(words(args.posts))), flush=True)
    if args.scenario in ("storm", "both"):
        print(json.dumps(asyncio.run(storm(args.clients))), flush=True)


if __name__ == "__main__":
    main()
