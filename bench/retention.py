"""What retention saves and costs: one room's stream before and after archiving.

    python -m bench.retention [--events 10000] [--keep 1000] [--redis URL]

Commits ``--events`` posts of 8 to 22 random words (a fixed seed) to one room under a
namespace of its own, archives it (:mod:`livehub.broker.archive`), and prints one JSON
line: ``MEMORY USAGE`` of the stream before and after and of the archive, per event;
the pass's time; and the time to read the whole log and 1,000 archived events back.
Deletes its keys at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid

from redis.asyncio import Redis

from livehub.broker.redis import RedisBroker

VOCABULARY = [f"{a}{b}{c}" for a in "bcdfglmnprst" for b in "aeiou" for c in
              ("n", "rt", "ll", "st", "m", "ck", "ng", "te")]


async def run(url: str, events: int, keep: int) -> dict[str, float]:
    rng = random.Random(1)
    ns, room = f"bench-retain-{uuid.uuid4().hex[:8]}", "room"
    broker = RedisBroker(url, namespace=ns)
    admin = Redis.from_url(url)
    await broker.start()
    try:
        for start in range(0, events, 500):
            await broker.commit(room, [
                {"t": "msg", "mid": f"m{i:08x}", "uid": f"u{i % 300}",
                 "name": f"Resident {i % 300}", "role": "participant",
                 "text": " ".join(rng.choice(VOCABULARY) for _ in range(8 + i % 15)),
                 "ts": 1_239_000_000_000 + i * 997}
                for i in range(start, min(events, start + 500))])
        log_key, archive_key = f"{ns}:{{{room}}}:log", f"{ns}:{{{room}}}:archive"
        before = await admin.memory_usage(log_key, samples=0)
        t0 = time.perf_counter()
        done = await broker.archive(room, keep=keep)
        took = time.perf_counter() - t0
        assert done is not None
        after = await admin.memory_usage(log_key, samples=0)
        archive = await admin.memory_usage(archive_key, samples=0)
        t0 = time.perf_counter()
        whole = await broker.read(room, 0)
        read_all = time.perf_counter() - t0
        assert whole.complete and len(whole.events) == events
        t0 = time.perf_counter()
        await broker.read(room, events // 3, limit=1000)
        read_1000 = time.perf_counter() - t0
        return {"events": events, "archived": done.upto, "kept": done.kept,
                "stream_bytes_per_event": round(before / events, 1),
                "stream_after_bytes": after, "archive_bytes_per_event":
                round(archive / max(1, done.upto), 1),
                "archive_ms": round(took * 1000, 1), "read_all_ms": round(read_all * 1000, 1),
                "read_1000_archived_ms": round(read_1000 * 1000, 1)}
    finally:
        async for key in admin.scan_iter(match=f"{ns}:*"):
            await admin.delete(key)
        await admin.aclose()
        await broker.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--keep", type=int, default=1000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args.redis, args.events, args.keep))))


if __name__ == "__main__":
    main()
