"""The cost of issue 20's checks on the hot path: the saturation scenario before and after,
in one run, interleaved.

``before``: the per-person limit off (``LIVEHUB_RATE_LIMIT=0``, which also turns each
connection's own budget off) and the guests' per-address limits off, as
:mod:`bench.servers` always runs livehub. ``after``: every one of them on, with budgets
so high that they never refuse, so every check runs (in the Redis commit script, and at
accept and ``hello``) and nothing changes what the load does. The load clients are
guests from one address per client process, which is why a benchmark normally turns
the per-address limits off, as an operator would for a load test.

Runs ``bench.run --scenario saturation`` ``--repeats`` times for each, alternating which
goes first, and prints one JSON line: the median saturation (deliveries/s with p99
<= 250 ms) of each and their ratio, and the server's CPU seconds per 1,000 deliveries at
the rate steps both passed (less noisy than the saturation itself, which moves in x1.4
steps). Each run's own line is appended to ``--out``.

    python -m bench.overhead                       # 3 + 3 runs, two processes on Redis
    python -m bench.overhead --scenario commit      # 20 listeners, 100 posts/s: CPU per post
    python -m bench.overhead --server livehub --repeats 1 -- --per-room 400
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.servers import REPO

HUGE = "1000000"
ON = ["LIVEHUB_RATE_LIMIT", "LIVEHUB_GUEST_ADDRESS_RATE", "LIVEHUB_GUEST_VOTES_PER_ADDRESS",
      "LIVEHUB_GUEST_NAMES_PER_HOUR", "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS"]
SETTINGS: dict[str, list[str]] = {
    "before": [],  # bench.servers: all of them 0
    "after": [f"{key}={HUGE}" for key in ON],
}


# ``commit``: few listeners, many posts: the commit path (where the checks run)
# dominates, and CPU seconds per post tell its cost better than a throughput on a
# machine shared with other people's jobs.
SCENARIOS: dict[str, list[str]] = {
    "saturation": ["--scenario", "saturation"],
    "commit": ["--scenario", "hot", "--per-room", "20", "--rate", "100"],
}


def run_one(label: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = ["--server", args.server, *SCENARIOS[args.scenario], "--duration",
            str(args.duration), *args.extra]
    for kv in SETTINGS[label]:
        argv += ["--server-env", kv]
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=args.timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        row: dict[str, Any] = json.loads(lines[-1]) if lines else {
            "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
    except subprocess.TimeoutExpired:
        row = {"error": f"timed out after {args.timeout} s"}
    row.update({"label": label, "argv": argv, "run_s": round(time.monotonic() - started, 1)})
    return row


def cpu_per_1k(rows: list[dict[str, Any]], rates: set[float]) -> float | None:
    vals = [s["cpu_s_per_1k_deliveries"] for r in rows for s in r.get("steps", [])
            if s.get("rate") in rates and s.get("passed") and s.get("cpu_s_per_1k_deliveries")]
    return round(statistics.median(vals), 4) if vals else None


def cpu_ms_per_post(row: dict[str, Any]) -> float | None:
    """Server and Redis CPU per post published, in the (best) measured step."""
    if not row.get("posts"):
        return None
    return round((row.get("server_cpu_s", 0) + row.get("redis_cpu_s", 0))
                 / row["posts"] * 1000, 3)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {label: [r for r in rows if r["label"] == label and "error" not in r]
          for label in SETTINGS}
    per_post = {label: [v for r in rs if (v := cpu_ms_per_post(r)) is not None]
                for label, rs in by.items()}
    per_post_med = {label: statistics.median(v) if v else None
                    for label, v in per_post.items()}
    sat = {label: [r["saturation_deliveries_per_s"] for r in rs
                   if "saturation_deliveries_per_s" in r] for label, rs in by.items()}
    med = {label: statistics.median(v) if v else None for label, v in sat.items()}
    passed = {label: {s["rate"] for r in rs for s in r.get("steps", []) if s.get("passed")}
              for label, rs in by.items()}
    common = passed["before"] & passed["after"]
    cpu = {label: cpu_per_1k(rs, common) for label, rs in by.items()}
    out: dict[str, Any] = {
        "runs": {label: len(rs) for label, rs in by.items()},
        "errors": [r["error"] for r in rows if "error" in r],
        "saturation_deliveries_per_s": sat,
        "median": med,
        "ratio_after_over_before": round(med["after"] / med["before"], 4)
        if med["before"] and med["after"] else None,
        "common_passing_rates": sorted(common),
        "server_cpu_s_per_1k_deliveries": cpu,
        "cpu_ratio_after_over_before": round(cpu["after"] / cpu["before"], 4)
        if cpu["before"] and cpu["after"] else None,
        "cpu_ms_per_post": per_post,
        "cpu_ms_per_post_median": per_post_med,
        "cpu_per_post_ratio": round(per_post_med["after"] / per_post_med["before"], 4)
        if per_post_med["before"] and per_post_med["after"] else None,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="livehub-redis", choices=("livehub", "livehub-redis"))
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="saturation")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per (saturation) step")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run at most")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" /
                                         f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"))
    ap.add_argument("extra", nargs="*", help="more arguments for every bench.run (after --)")
    args = ap.parse_args(argv)
    if not 1 <= args.repeats <= 10:
        ap.error("bounded: --repeats from 1 to 10")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for rep in range(args.repeats):
        order = ("before", "after") if rep % 2 == 0 else ("after", "before")
        for label in order:
            row = run_one(label, args)
            row["repeat"] = rep + 1
            rows.append(row)
            with out.open("a") as f:
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
            print(f"[{time.strftime('%H:%M:%S')}] {label} #{rep + 1}: "
                  f"{row.get('saturation_deliveries_per_s', row.get('error'))} deliveries/s, "
                  f"{cpu_ms_per_post(row)} CPU ms per post",
                  file=sys.stderr, flush=True)
    result = {"scenario": args.scenario, "server": args.server, "repeats": args.repeats,
              "after_env": SETTINGS["after"], "results": str(out), **summarise(rows)}
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
