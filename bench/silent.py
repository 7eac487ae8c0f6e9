"""Silent connections: the "500 silent connections" part of the abuse scenario (issue 20).

Opens ``--count`` TCP connections that never send a byte, spread over several loopback
source addresses, and holds them for ``--seconds``; meanwhile one honest client, from
its own address, sends a ``ping`` every 100 ms over a joined WebSocket and asks for
``/healthz`` every 500 ms. Prints one JSON line: how many silent connections the server
accepted, when it closed them (the request head deadline), how many were still open at
the end, and the honest client's ping round trip (p50/p99/max) and failed probes.
Bounded in count and time; loopback only.

    python -m bench.silent --spawn livehub-redis --count 500 --seconds 20
    python -m bench.silent --port 8000 --room day1-opening --count 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

HONEST = "127.0.0.250"


def sources(spec: str) -> list[str]:
    """``127.0.0.2-11`` or a comma-separated list."""
    if "-" in spec and "," not in spec:
        head, _, last = spec.rpartition("-")
        prefix, _, first = head.rpartition(".")
        return [f"{prefix}.{i}" for i in range(int(first), int(last) + 1)]
    return [s.strip() for s in spec.split(",") if s.strip()]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)


@dataclass
class Silent:
    opened: int = 0
    refused: int = 0  # connect() itself failed
    closed_after: list[float] = field(default_factory=list)  # seconds, server closed it
    answers: dict[str, int] = field(default_factory=dict)  # what it said before closing


async def hold_silent(host: str, port: int, count: int, addrs: list[str], seconds: float,
                      stats: Silent) -> None:
    async def one(i: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, local_addr=(addrs[i % len(addrs)], 0)), 5)
        except (OSError, TimeoutError):
            stats.refused += 1
            return
        stats.opened += 1
        t0 = time.monotonic()
        data = b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(seconds):
                while chunk := await reader.read(4096):
                    data += chunk
                stats.closed_after.append(time.monotonic() - t0)
                status = data[9:12].decode(errors="replace") if data else "closed"
                stats.answers[status] = stats.answers.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(one(i) for i in range(count)))


async def honest(host: str, port: int, room: str, seconds: float) -> dict[str, Any]:
    rtts: list[float] = []
    failed = 0
    health_failed = 0
    why: list[str] = []
    deadline = time.monotonic() + seconds

    async def healthz() -> None:
        nonlocal health_failed
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    host, port, local_addr=(HONEST, 0)), 2)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 2)
                writer.close()
                if not head.startswith(b"HTTP/1.1 200"):
                    health_failed += 1
                    why.append(head[:40].decode(errors="replace"))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                health_failed += 1
                why.append(type(exc).__name__)
            await asyncio.sleep(0.5)

    probe = asyncio.create_task(healthz())
    try:
        async with websockets.connect(
                f"ws://{host}:{port}/ws/{room}", subprotocols=["livehub.v1.json"],  # type: ignore[list-item]
                local_addr=(HONEST, 0), open_timeout=10, compression=None) as ws:
            await ws.send(json.dumps({"t": "hello", "name": "Honest"}))
            await asyncio.wait_for(ws.recv(), 10)
            n = 0
            while time.monotonic() < deadline:
                n += 1
                t0 = time.monotonic()
                await ws.send(json.dumps({"t": "ping", "id": f"p{n}"}))
                try:
                    async with asyncio.timeout(5):
                        while True:
                            frame = await ws.recv()
                            if f'"p{n}"' in str(frame):
                                break
                    rtts.append((time.monotonic() - t0) * 1000)
                except TimeoutError:
                    failed += 1
                await asyncio.sleep(0.1)
    except (OSError, websockets.WebSocketException, TimeoutError):
        failed += 1
    await probe
    return {"pings": len(rtts), "pings_failed": failed, "healthz_failed": health_failed,
            "healthz_errors": sorted(set(why)),
            "ping_ms": {"p50": pct(rtts, 50), "p99": pct(rtts, 99),
                        "max": round(max(rtts), 2) if rtts else None}}


async def scenario(host: str, port: int, room: str, count: int, addrs: list[str],
                   seconds: float) -> dict[str, Any]:
    stats = Silent()
    silent = asyncio.create_task(hold_silent(host, port, count, addrs, seconds, stats))
    probe = await honest(host, port, room, seconds)
    await silent
    return {
        "silent": count, "addresses": len(addrs), "seconds": seconds,
        "opened": stats.opened, "connect_failed": stats.refused,
        "closed_by_server": len(stats.closed_after), "answers": stats.answers,
        "closed_after_s": {"p50": pct(stats.closed_after, 50),
                           "max": round(max(stats.closed_after), 2)
                           if stats.closed_after else None},
        "still_open": stats.opened - len(stats.closed_after),
        **probe,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--room", default="bench-0")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--sources", default="127.0.0.2-11")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--spawn", choices=("livehub", "livehub-redis"),
                    help="start this server (bench.servers) instead of using --port")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for --spawn (repeatable)")
    args = ap.parse_args(argv)
    if args.count > 5000 or args.seconds > 300:
        ap.error("bounded: --count at most 5000, --seconds at most 300")
    server: Any = None
    if args.spawn:
        from bench.servers import Server

        env = dict(kv.split("=", 1) for kv in args.env)
        server = Server(args.spawn, [args.room], Path(tempfile.mkdtemp(prefix="silent-")),
                        env=env).start()
        args.port = server.port
    try:
        result = asyncio.run(scenario(args.host, args.port, args.room, args.count,
                                      sources(args.sources), args.seconds))
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        result["server"] = args.spawn
        result["env"] = args.env
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
