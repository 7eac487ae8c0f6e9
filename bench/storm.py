"""Bounded cost benchmarks (issue 14): a reconnect storm, and ``/api/rooms`` on cold rooms.

    python -m bench.storm storm [--events 50000 --clients 1000] [--code DIR]
    python -m bench.storm rooms [--rooms 100 --events 10000 --rate 50 --duration 10]

``storm``: a private redis-server gets a room of ``--events`` events; one livehub
process loads it; then ``--clients`` clients reconnect at once, half with ``since`` 0
and half with a recent ``since``. Meanwhile a probe (its own process) posts in a second
room and times each post until its ``msg`` arrives at another client there. Reports
every client's time to ``welcome``, the probe's p50/p99, and the server's RSS growth.

``rooms``: ``--rooms`` rooms of ``--events`` events each, none loaded by the server;
``GET /api/rooms`` at ``--rate`` requests/s for ``--duration`` s; latency p50/p99.

``--code DIR`` runs the server from another checkout (say, the code before issue 14,
``git worktree add /tmp/before <commit>``), for a before/after comparison. Everything
is bounded in count and time, and every process started is stopped by pid. One JSON
line is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import REPO, PrivateRedis, free_port
from bench.wsclient import OP_TEXT, connect

SECRET = "bench-secret-bench-secret-bench-secret-0123"
SUB = ["livehub.v1.json"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- seeding ---------------------------------------------------------------------------


async def seed(url: str, rooms: list[str], events: int, batch: int = 1000) -> None:
    """``events`` posts in each room, committed as livehub commits them (the same script)."""
    from livehub.broker.redis import RedisBroker

    broker = RedisBroker(url, command_timeout=30)
    await broker.start()
    try:
        for room in rooms:
            for start in range(0, events, batch):
                evs = [{"t": "msg", "mid": f"m{room}{i}", "uid": f"u{i % 500}",
                        "name": f"Person {i % 500}", "text": f"seeded post number {i}",
                        "ts": 1_700_000_000_000 + i}
                       for i in range(start, min(events, start + batch))]
                await broker.commit(room, evs)
    finally:
        await broker.close()


# --- the server ------------------------------------------------------------------------


def start_server(code: Path, redis_url: str, rooms: list[str], workdir: Path,
                 env: dict[str, str] | None = None, profile: Path | None = None
                 ) -> tuple[subprocess.Popen[bytes], int]:
    programme = workdir / "programme.toml"
    programme.write_text('[conference]\ntitle = "Storm"\n' + "".join(
        f'\n[[session]]\nslug = "{r}"\ntitle = "Room {r}"\n' for r in rooms))
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    full_env.update({
        "LIVEHUB_SECRET": SECRET, "LIVEHUB_ENV": "test", "LIVEHUB_LOG_LEVEL": "warning",
        "LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_MAX_CONNECTIONS_PER_IP": "0",
        "LIVEHUB_GUEST_ADDRESS_RATE": "0", "LIVEHUB_GUEST_NAMES_PER_HOUR": "0",
        "LIVEHUB_GUEST_VOTES_PER_ADDRESS": "0", "LIVEHUB_HELLO_TIMEOUT": "60",
        "LIVEHUB_PROGRAMME": str(programme), "PYTHONPATH": str(code), **(env or {}),
    })
    log = open(workdir / "server.log", "ab")
    prof = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    proc = subprocess.Popen(
        [sys.executable, *prof, "-m", "livehub", "serve", "--port", str(port),
         "--redis", redis_url],
        cwd=code, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc, port
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError("server did not start: " + (workdir / "server.log").read_text()[-2000:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- a client that waits for its welcome --------------------------------------------------


async def welcome_of(port: int, room: str, hello: dict[str, Any], timeout: float
                     ) -> tuple[dict[str, Any], Any]:
    """(welcome, open client). The welcome may share a frame with later events."""
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_message(payload: bytes, _: int) -> None:
        if got.done():
            return
        first = payload.split(b"\n", 1)[0]
        msg = json.loads(first)
        if msg.get("t") in ("welcome", "error"):
            got.set_result({**msg, "_bytes": len(first)})

    client = await connect("127.0.0.1", port, f"/ws/{room}", SUB, on_message, timeout=timeout)
    client.send(json.dumps({"t": "hello", **hello}).encode(), OP_TEXT)
    return await asyncio.wait_for(got, timeout), client


# --- the probe: ping-to-event in a second room ---------------------------------------------


def probe_main(port: int, room: str, seconds: float, out: Any) -> None:
    asyncio.run(_probe(port, room, seconds, out))


async def _probe(port: int, room: str, seconds: float, out: Any) -> None:
    sent: dict[str, float] = {}
    lat: list[float] = []

    def on_listen(payload: bytes, _: int) -> None:
        now = time.perf_counter()
        for line in payload.split(b"\n"):
            msg = json.loads(line)
            if msg.get("t") == "msg" and msg.get("text") in sent:
                lat.append(now - sent.pop(msg["text"]))

    _, listener = await welcome_of(port, room, {"name": "Listener"}, 30)
    listener.on_message = on_listen
    _, poster = await welcome_of(port, room, {"name": "Poster"}, 30)
    poster.on_message = lambda payload, op: None
    out.send("ready")
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        text = f"probe {i}"
        sent[text] = time.perf_counter()
        poster.send(json.dumps({"t": "post", "text": text}).encode(), OP_TEXT)
        i += 1
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    out.send({"sent": i, "received": len(lat), "lost": len(sent),
              "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
              "max_ms": max(lat, default=float("nan")) * 1000})


# --- scenarios -----------------------------------------------------------------------------


async def storm(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    first, warm = await welcome_of(port, "storm", {"name": "Warm"}, 120)  # loads the room
    head, epoch = first["seq"], first["epoch"]
    warm.abort()
    await asyncio.sleep(1.0)
    base_rss = rss_mib(pid)
    parent, child = multiprocessing.Pipe()
    probe = multiprocessing.Process(target=probe_main,
                                    args=(port, "calm", args.probe_seconds, child))
    probe.start()
    try:
        assert parent.poll(30) and parent.recv() == "ready"
        peak = base_rss
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        await asyncio.sleep(1.0)  # the probe's baseline before the storm
        started = time.perf_counter()

        async def one(i: int) -> tuple[float, dict[str, Any] | None, Any]:
            since = 0 if i % 2 == 0 else max(0, head - args.recent)
            try:
                w, client = await welcome_of(port, "storm", {
                    "name": f"Guest {i}", "since": since, "epoch": epoch}, args.timeout)
            except (TimeoutError, OSError, ConnectionError, json.JSONDecodeError):
                return time.perf_counter() - started, None, None
            return time.perf_counter() - started, w, client

        results = await asyncio.gather(*(one(i) for i in range(args.clients)))
        storm_s = time.perf_counter() - started
        await asyncio.sleep(1.0)
        done.set()
        await sampler
        probe_stats = parent.recv() if parent.poll(args.probe_seconds + 30) else {}
    finally:
        probe.join(10)
        if probe.is_alive():
            probe.kill()
    welcomed = [(t, w) for t, w, _ in results if w is not None and w.get("t") == "welcome"]
    times = [t for t, _ in welcomed]
    for _, _, c in results:
        if c is not None:
            c.abort()
    return {
        "scenario": "storm", "events": args.events, "clients": args.clients,
        "welcomed": len(welcomed), "welcomed_within_10s": sum(t <= 10 for t in times),
        "welcome_p50_s": pct(times, 0.5), "welcome_p99_s": pct(times, 0.99),
        "welcome_max_s": max(times, default=float("nan")), "storm_s": storm_s,
        "recovered": sum(bool(w.get("recovered")) for _, w in welcomed),
        "largest_welcome_bytes": max((w["_bytes"] for _, w in welcomed), default=0),
        "rss_base_mib": round(base_rss, 1), "rss_growth_mib": round(peak - base_rss, 1),
        "probe": probe_stats,
    }


async def api_rooms(args: argparse.Namespace, port: int) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 timeout=args.timeout) as http:
        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                r = await http.get("/api/rooms")
                r.raise_for_status()
                lat.append(time.perf_counter() - t)
            except httpx.HTTPError:
                errors += 1

        tasks = []
        started = time.perf_counter()
        n = int(args.rate * args.duration)
        for i in range(n):
            await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    return {"scenario": "rooms", "rooms": args.rooms, "events_per_room": args.events,
            "requests": n, "answered": len(lat), "errors": errors,
            "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
            "max_ms": max(lat, default=float("nan")) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["storm", "rooms"])
    ap.add_argument("--code", type=Path, default=REPO, help="checkout to run the server from")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--recent", type=int, default=50, help="how far back a recent since is")
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--probe-seconds", type=float, default=20.0)
    ap.add_argument("--profile", type=Path, default=None, help="cProfile the server into FILE")
    args = ap.parse_args()
    args.events = args.events or (50_000 if args.scenario == "storm" else 10_000)
    redis = PrivateRedis().start()
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="livehub-storm-") as tmp:
            if args.scenario == "storm":
                rooms = ["storm", "calm"]
                asyncio.run(seed(redis.url, ["storm"], args.events))
            else:
                rooms = [f"r{i:03d}" for i in range(args.rooms)]
                asyncio.run(seed(redis.url, rooms, args.events))
            proc, port = start_server(args.code.resolve(), redis.url, rooms, Path(tmp),
                                      profile=args.profile)
            if args.scenario == "storm":
                result = asyncio.run(storm(args, port, proc.pid))
            else:
                result = asyncio.run(api_rooms(args, port))
            result["code"] = str(args.code)
            print(json.dumps(result))
    finally:
        if proc is not None:
            stop(proc)
        redis.stop()


if __name__ == "__main__":
    main()
