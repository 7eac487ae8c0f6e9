"""Run one scenario against one server and print ONE JSON line.

    python -m bench.run --server livehub --scenario hot
    python -m bench.run --server sio-redis --scenario saturation --clients 2
    python -m bench.run --server livehub --scenario smoke          # a few seconds, tiny N

Scenarios (defaults, every one overridable by a flag):

==============  ====================================================================
``hot``         1 room x 2,000 listeners, one publisher, ``--rate`` posts/s for ``--duration`` s
``rooms``       50 rooms x 40 listeners, one publisher per room
``idle``        10,000 connections over 10 rooms: RSS per connection, then a 2-post
                liveness check that every connection still receives
``saturation``  the hot room, rate raised step by step (x ``--factor``) until the server
                no longer keeps up (a message lost, a client closed, under 90 % of
                the offered rate delivered, or p99 past ``--stop-p99``); then one
                step half-way above the best passing one. Reports the highest
                deliveries/s with p99 within ``--p99-limit`` ms and nothing lost
                (``saturation_deliveries_per_s``), and the highest kept up with at
                all (``ceiling_deliveries_per_s``).
``smoke``       2 rooms x 5 listeners, 2 s (CI)
==============  ====================================================================

The coordinator (this process) starts the server, forks ``--clients`` client
processes (:mod:`bench.loadgen`), and samples the server processes' RSS and
CPU seconds (and Redis's, from INFO) around each measured step. Every wait is
bounded and everything started is stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import hist as H
from bench.loadgen import WorkerConfig, raise_nofile, worker_main
from bench.servers import (
    KINDS,
    PrivateRedis,
    Server,
    dialect_of,
    redis_cleanup,
    redis_cpu,
    renice,
)

SCENARIOS: dict[str, dict[str, Any]] = {
    "hot": {"rooms": 1, "per_room": 2000, "rate": 20.0, "duration": 10.0},
    "rooms": {"rooms": 50, "per_room": 40, "rate": 5.0, "duration": 10.0},
    "idle": {"rooms": 10, "per_room": 1000, "rate": 1.0, "duration": 2.0, "hold": 5.0},
    "saturation": {"rooms": 1, "per_room": 2000, "rate": 10.0, "duration": 5.0},
    "smoke": {"rooms": 2, "per_room": 5, "rate": 10.0, "duration": 2.0, "drain": 5.0},
}


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_busy: float, max_wait: float, window: float = 2.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine is less than ``max_busy`` cores busy
    over ``window`` s; returns the busy cores last seen. Other people's jobs share this
    machine: a benchmark step that runs beside them measures them too."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy()
        time.sleep(window)
        busy = (machine_busy() - b0) / window
        if busy < max_busy or time.monotonic() > deadline:
            return round(busy, 2)


def _latency(hist: list[int], max_us: int) -> dict[str, float]:
    """p50/p90/p99 (bucket upper edges, never above the max seen) and max, in ms."""
    top = round(max_us / 1000, 3)
    out = {k: min(v, top) for k, v in H.percentiles(hist).items()}
    out["max"] = top
    return out


class Coordinator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.nonce = secrets.token_hex(3)
        self.prefix = f"b{self.nonce}"
        self.rooms = [f"{self.prefix}-{i:03d}" for i in range(args.rooms)]
        self.workdir = Path(tempfile.mkdtemp(prefix="livehub-bench-"))
        env = dict(kv.split("=", 1) for kv in args.server_env)
        self.private_redis: PrivateRedis | None = None
        if args.server.endswith("-redis") and args.redis == "private":
            self.private_redis = PrivateRedis(args.nice).start()
            args.redis = self.private_redis.url
        self.server = Server(args.server, self.rooms, self.workdir, redis_url=args.redis,
                             env=env, port=args.port, nice=args.nice)
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        self.next_id = 1

    # -- workers ---------------------------------------------------------------------

    def start_workers(self) -> None:
        a = self.args
        ctx = multiprocessing.get_context("spawn")
        n = a.rooms * a.per_room
        base = random.randint(2, 200)
        for w in range(a.clients):
            cfg = WorkerConfig(
                index=w, host="127.0.0.1", port=self.server.port,
                dialect=dialect_of(a.server, a.codec), rooms=self.rooms,
                listeners=list(range(w, n, a.clients)), per_room=a.per_room,
                publishers=list(range(w, a.rooms, a.clients)),
                nonce=self.nonce, source_ip=f"127.0.{base}.{w + 2}",
                sample_every=a.sample_every, nice=a.nice,
            )
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, cfg), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def ask_all(self, cmd: str, arg: Any, timeout: float) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((cmd, arg))
        out = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.1, deadline - time.monotonic())):
                raise TimeoutError(f"client process did not answer {cmd!r} in {timeout} s")
            out.append(pipe.recv())
        return out

    def stop_workers(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("close", None))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(2)

    # -- measuring -------------------------------------------------------------------

    def step(self, rate: float) -> dict[str, Any]:
        a = self.args
        count = max(1, round(rate * a.duration))
        first = self.next_id
        self.next_id += count
        cpu0, redis0 = self.server.cpu(), redis_cpu(a.redis) if self._redis else None
        t0 = time.time() + 1.0
        busy0 = machine_busy()
        spies = self._start_profile(count / rate) if a.profile and not self._profiled else []
        results = self.ask_all("step", {"rate": rate, "first": first, "count": count,
                                        "t0": t0, "drain": a.drain},
                               timeout=1.0 + 2 * count / rate + 5 + a.drain + 30)
        cpu1, redis1 = self.server.cpu(), redis_cpu(a.redis) if self._redis else None
        busy = machine_busy() - busy0
        for spy in spies:
            with contextlib.suppress(Exception):
                spy.wait(30)
        hist = H.new()
        for r in results:
            H.merge(hist, r["hist"])
        received = sum(r["received"] for r in results)
        sent = sum(r["sent"] for r in results)
        publish_s = max(count / rate, max(r["publish_end"] for r in results) - t0)
        lost = sum(r["gaps"] + r["tail"] for r in results)
        frames = sum(r["frames"] for r in results)
        server_cpu = sum(cpu1.get(p, 0) - cpu0.get(p, 0) for p in cpu1)
        expected = count * a.per_room * a.rooms
        out: dict[str, Any] = {
            "rate": rate, "posts": count * a.rooms, "sent": sent,
            "deliveries": received, "expected": expected,
            "deliveries_per_s": round(received / publish_s, 1),
            "offered_per_s": round(rate * a.rooms * a.per_room, 1),
            "latency_ms": _latency(hist, max(r["max_us"] for r in results)),
            "lost": lost, "gaps": sum(r["gaps"] for r in results),
            "tail": sum(r["tail"] for r in results), "dups": sum(r["dups"] for r in results),
            "closed": sum(r["closed"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "acks": sum(r["acks"] for r in results),
            "frames": frames,
            "deliveries_per_frame": round(received / frames, 3) if frames else None,
            "publisher_lag_s": round(max(r["lag"] for r in results), 3),
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_per_process_s": [round(cpu1[p] - cpu0.get(p, 0), 3) for p in cpu1],
            "client_cpu_s": round(sum(r["cpu"] for r in results), 3),
            "cpu_s_per_1k_deliveries": round(server_cpu / received * 1000, 4)
            if received else None,
            "window_s": round(publish_s, 3),
        }
        redis_s = 0.0
        if redis0 is not None and redis1 is not None:
            out["redis_cpu_s"] = redis_s = round(redis1 - redis0, 3)
        # Whatever else ran on the machine meanwhile (other people's jobs, the kernel's
        # loopback work not charged to a process): the noise floor of this step.
        out["machine_busy_s"] = round(busy, 3)
        out["other_cpu_s"] = round(busy - server_cpu - out["client_cpu_s"] - redis_s, 3)
        out["step_wall_s"] = round(time.time() - t0 + 1.0, 3)
        return out

    _profiled = False

    def _start_profile(self, seconds: float) -> list[subprocess.Popen[bytes]]:
        """py-spy on every server process (``--profile DIR``) for one publishing window."""
        self._profiled = True
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        spies = []
        for pid in self.server.pids:
            path = out / f"{self.args.server}-{pid}.txt"
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spies.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                 "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        return spies

    @property
    def _redis(self) -> bool:
        return self.args.server.endswith("-redis")

    @staticmethod
    def passed(step: dict[str, Any], p99_limit: float) -> bool:
        p99 = step["latency_ms"]["p99"]
        return (step["lost"] == 0 and step["closed"] == 0 and step["errors"] == 0
                and p99 == p99 and p99 <= p99_limit
                and step["deliveries_per_s"] >= 0.9 * step["offered_per_s"])

    def wait_server_idle(self, max_wait: float = 30.0) -> None:
        """Let a server that fell behind finish its backlog (CPU under 0.1 core for 1 s)."""
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            c0 = sum(self.server.cpu().values())
            time.sleep(1.0)
            if sum(self.server.cpu().values()) - c0 < 0.1:
                return

    def sweep(self) -> dict[str, Any]:
        """Raise the rate by ``--factor`` until the server cannot keep up at all (a loss, a
        close, under 90 % delivered, or p99 over ``--stop-p99``), then try half-way
        between the highest step within ``--p99-limit`` and the next one.

        Saturation is the highest step within the limit, not the first one past it: a
        passing step above a failing one means the failure was a passing disturbance.
        The ceiling is the highest step at which the server kept up at all."""
        a = self.args
        steps: list[dict[str, Any]] = []
        rate = a.rate
        for _ in range(a.max_steps):
            s = self.step(rate)
            s["passed"] = self.passed(s, a.p99_limit)
            s["kept_up"] = self.passed(s, a.stop_p99)
            steps.append(s)
            if not s["kept_up"]:
                break
            rate = round(rate * a.factor, 2)
        passing = [s for s in steps if s["passed"]]
        if passing:
            top = max(s["rate"] for s in passing)
            above = [s["rate"] for s in steps if s["rate"] > top]
            if above:
                mid = round((top + min(above)) / 2, 2)
                if mid > top * 1.05:
                    self.wait_server_idle()
                    s = self.step(mid)
                    s["passed"] = self.passed(s, a.p99_limit)
                    s["kept_up"] = self.passed(s, a.stop_p99)
                    steps.append(s)
        passing = [s for s in steps if s["passed"]]
        kept_up = [s for s in steps if s["kept_up"]]
        best = max(passing, key=lambda s: s["deliveries_per_s"]) if passing else None
        ceiling = max(kept_up, key=lambda s: s["deliveries_per_s"]) if kept_up else None
        out: dict[str, Any] = {
            "steps": steps,
            "saturation_deliveries_per_s": best["deliveries_per_s"] if best else 0,
            "saturation_rate": best["rate"] if best else None,
            "ceiling_deliveries_per_s": ceiling["deliveries_per_s"] if ceiling else 0,
            "ceiling_p99_ms": ceiling["latency_ms"]["p99"] if ceiling else None,
            "ceiling_rate": ceiling["rate"] if ceiling else None,
        }
        if best:
            out.update({k: v for k, v in best.items() if k not in ("passed", "kept_up")})
        return out

    def run(self) -> dict[str, Any]:
        a = self.args
        result: dict[str, Any] = {
            "scenario": a.scenario, "server": a.server, "rooms": a.rooms,
            "listeners_per_room": a.per_room, "connections": a.rooms * a.per_room,
            "publishers": a.rooms, "clients": a.clients, "codec": dialect_of(a.server, a.codec),
            "server_env": a.server_env, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        try:
            self.server.start()
            time.sleep(0.5)
            rss_base = self.server.rss()
            self.start_workers()
            t = time.perf_counter()
            conn = self.ask_all("connect", None, timeout=60 + a.rooms * a.per_room / 50)
            connect_wall = time.perf_counter() - t
            times = sorted(x for c in conn for x in c["connect_ms"])
            errors = [e for c in conn for e in c["errors"]]
            result.update({
                "connected": sum(c["connected"] for c in conn),
                "connect_errors": sum(c["n_errors"] for c in conn),
                "connect_error_samples": errors[:5],
                "connect_s": round(connect_wall, 3),
                "connect_ms": {"p50": round(times[len(times) // 2], 2) if times else None,
                               "p99": round(times[int(len(times) * 0.99)], 2)
                               if times else None},
            })
            time.sleep(a.settle)
            rss = self.server.rss()
            result["server_rss_mb"] = round(rss / 2**20, 1)
            result["server_rss_base_mb"] = round(rss_base / 2**20, 1)
            result["rss_per_connection_kb"] = round(
                (rss - rss_base) / max(1, result["connected"]) / 1024, 2)
            result["server_processes"] = len(self.server.pids)
            if a.scenario == "idle":
                time.sleep(a.hold)
                result["server_rss_after_hold_mb"] = round(self.server.rss() / 2**20, 1)
            if a.scenario == "saturation":
                result.update(self.sweep())
            else:
                result.update(self.step(a.rate))
            result["server_rss_end_mb"] = round(self.server.rss() / 2**20, 1)
            if self.server.proc is not None and self.server.proc.poll() is not None:
                result["server_exit"] = self.server.proc.returncode
            return result
        finally:
            self.stop_workers()
            self.server.stop()
            if self.private_redis is not None:
                self.private_redis.stop()
            elif a.server == "livehub-redis":
                redis_cleanup(a.redis, self.prefix)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=KINDS, default="livehub")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="hot")
    ap.add_argument("--rooms", type=int, help="rooms (scenario default)")
    ap.add_argument("--per-room", type=int, help="listeners per room")
    ap.add_argument("--rate", type=float, help="posts per second per room (saturation: first)")
    ap.add_argument("--duration", type=float, help="seconds of publishing per step")
    ap.add_argument("--drain", type=float, default=5.0,
                    help="seconds to wait for the last deliveries after publishing")
    ap.add_argument("--hold", type=float, help="idle: seconds to hold the connections")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds between connecting and measuring RSS")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--sample-every", type=int, default=1,
                    help="measure latency on every k-th listener (all count deliveries)")
    ap.add_argument("--codec", choices=("msgpack", "json"), default="msgpack",
                    help="livehub's codec (the ws peer speaks msgpack, socket.io JSON)")
    ap.add_argument("--factor", type=float, default=1.4, help="saturation: rate multiplier")
    ap.add_argument("--max-steps", type=int, default=16, help="saturation: most steps")
    ap.add_argument("--stop-p99", type=float, default=2000.0,
                    help="saturation: stop raising the rate once p99 passes this (ms)")
    ap.add_argument("--p99-limit", type=float, default=250.0, help="saturation: p99 limit (ms)")
    ap.add_argument("--nice", type=int, default=-19,
                    help="niceness of the server and client processes (this machine is "
                         "shared: a negative value keeps other jobs from skewing the "
                         "numbers; needs root, else ignored; 0 leaves it alone)")
    ap.add_argument("--profile", metavar="DIR",
                    help="py-spy every server process during the first step (raw stacks)")
    ap.add_argument("--redis", default="private",
                    help="Redis URL for the -redis servers, or 'private' (default): a "
                         "redis-server of the benchmark's own on a free port")
    ap.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the server (e.g. LIVEHUB_BENCH_COALESCE_AFTER)")
    a = ap.parse_args(argv)
    defaults = SCENARIOS[a.scenario]
    for key in ("rooms", "per_room", "rate", "duration", "hold"):
        if getattr(a, key) is None:
            setattr(a, key, defaults.get(key, 0))
    if "drain" in defaults and a.drain == 5.0:
        a.drain = defaults["drain"]
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    raise_nofile()
    renice([os.getpid()], args.nice)  # this session's group: the coordinator and clients
    result = Coordinator(args).run()
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


def median_of(values: list[float]) -> float:
    return statistics.median(values)


if __name__ == "__main__":
    sys.exit(main())
