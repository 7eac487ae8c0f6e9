"""Latency against delivered rate, from the saturation steps of a suite's JSONL.

    python -m bench.plot bench/results/suite-<time>.jsonl --out docs/benchmarks-latency.png

One panel per broker kind (in-memory, 1 process; Redis, 2 processes); for each
server, the median over repeats of p50 (dashed) and p99 (solid) at each offered
rate, against the median delivered rate. The dotted line is the 250 ms p99 limit
of the saturation scenario.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from bench.report import NAMES, load_many

COLOURS = {"livehub": "#1b6ac9", "ws": "#2e8b57", "sio": "#c0392b"}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("jsonl", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks-latency.png"))
    a = ap.parse_args()
    rows = [r for r in load_many(a.jsonl)
            if r.get("scenario") == "saturation" and "steps" in r]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, kinds, title in (
            (axes[0], ("livehub", "ws", "sio"), "in-memory broker, 1 server process"),
            (axes[1], ("livehub-redis", "ws-redis", "sio-redis"), "Redis, 2 server processes")):
        for kind in kinds:
            steps: dict[float, list[dict[str, float]]] = defaultdict(list)
            for r in rows:
                if r["server"] != kind:
                    continue
                for s in r["steps"]:
                    if s["deliveries"] and s["latency_ms"]["p99"] == s["latency_ms"]["p99"]:
                        steps[s["rate"]].append(s)
            if not steps:
                continue
            xs, p50, p99 = [], [], []
            for rate in sorted(steps):
                ss = steps[rate]
                xs.append(statistics.median(s["deliveries_per_s"] for s in ss))
                p50.append(statistics.median(s["latency_ms"]["p50"] for s in ss))
                p99.append(statistics.median(s["latency_ms"]["p99"] for s in ss))
            order = sorted(range(len(xs)), key=xs.__getitem__)
            xs, p50, p99 = ([v[i] for i in order] for v in (xs, p50, p99))
            colour = COLOURS[kind.split("-")[0]]
            ax.plot(xs, p99, "-o", color=colour, label=f"{NAMES[kind]}: p99", markersize=4)
            ax.plot(xs, p50, "--", color=colour, alpha=0.7, label="p50")
        ax.axhline(250, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("deliveries per second (hot room, 2,000 listeners)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("end-to-end latency, ms (median of runs)")
    fig.suptitle("livehub and its peers: latency against delivery rate (2-core box, "
                 "clients on the same machine)", fontsize=11)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
