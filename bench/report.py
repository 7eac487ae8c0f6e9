"""Markdown tables (medians over repeats) and the targets of issue 8, from a suite's JSONL.

    python -m bench.report bench/results/suite-<time>.jsonl [later.jsonl ...] > /tmp/tables.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

SERVERS = ("livehub", "ws", "sio", "livehub-redis", "ws-redis", "sio-redis")
NAMES = {
    "livehub": "livehub, in-memory, 1 process",
    "ws": "websockets broadcast(), 1 process",
    "sio": "python-socketio, 1 process",
    "livehub-redis": "livehub, Redis, 2 processes",
    "ws-redis": "websockets + Redis relay, 2 processes",
    "sio-redis": "python-socketio + AsyncRedisManager, 2 processes",
}


def _sio_of(server: str) -> str:
    return "sio-redis" if server.endswith("-redis") else "sio"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def load_many(paths: list[Path]) -> list[dict[str, Any]]:
    """Rows of several suite files; a label found in a later file replaces the same
    label's rows from earlier ones (e.g. livehub rerun after a change, peers kept)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        fresh: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in load(path):
            fresh[row.get("label", "?")].append(row)
        by_label.update(fresh)
    return [r for rows in by_label.values() for r in rows]


def med(values: list[Any]) -> float | None:
    nums = [v for v in values if isinstance(v, int | float) and v == v]
    return statistics.median(nums) if nums else None


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


class Report:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if "error" in r:
                self.by["errors"].append(r)
            self.by[r.get("label", "?")].append(r)

    def runs(self, label: str) -> list[dict[str, Any]]:
        return [r for r in self.by.get(label, []) if "error" not in r]

    def m(self, label: str, key: str, sub: str | None = None) -> float | None:
        vals = [r.get(key) if sub is None else (r.get(key) or {}).get(sub)
                for r in self.runs(label)]
        return med(vals)

    def split(self, label: str) -> str:
        """Median CPU split of the measured window: server / clients / Redis / rest."""
        keys = ("server_cpu_s", "client_cpu_s", "redis_cpu_s", "other_cpu_s")
        vals = [self.m(label, k) for k in keys]
        return " / ".join(fmt(v, 1) for v in vals)

    # -- tables ---------------------------------------------------------------------

    def saturation(self) -> list[str]:
        out = ["| server | saturation deliveries/s (p99 <= 250 ms) | p50 / p99 ms there | "
               "server CPU s per 1k deliveries | deliveries per frame | CPU s server / "
               "clients / Redis / rest | ceiling deliveries/s (kept up, p99 <= 2 s) | "
               "p99 ms at the ceiling | runs |",
               "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for s in SERVERS:
            lab = f"{s}/saturation"
            if not self.runs(lab):
                continue
            out.append(
                f"| {NAMES[s]} | **{fmt(self.m(lab, 'saturation_deliveries_per_s'))}** | "
                f"{fmt(self.m(lab, 'latency_ms', 'p50'), 1)} / "
                f"{fmt(self.m(lab, 'latency_ms', 'p99'), 1)} | "
                f"{fmt(self.m(lab, 'cpu_s_per_1k_deliveries'), 4)} | "
                f"{fmt(self.m(lab, 'deliveries_per_frame'), 2)} | {self.split(lab)} | "
                f"{fmt(self.m(lab, 'ceiling_deliveries_per_s'))} | "
                f"{fmt(self.m(lab, 'ceiling_p99_ms'), 0)} | {len(self.runs(lab))} |")
        return out

    def latency_table(self, labels: list[tuple[str, str]]) -> list[str]:
        out = ["| server | deliveries/s | p50 | p90 | p99 | max (ms) | lost | server CPU s "
               "per 1k | CPU s server / clients / Redis / rest | runs |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for s, lab in labels:
            if not self.runs(lab):
                continue
            lat = [fmt(self.m(lab, "latency_ms", k), 1) for k in ("p50", "p90", "p99", "max")]
            out.append(f"| {NAMES[s]} | {fmt(self.m(lab, 'deliveries_per_s'))} | "
                       f"{' | '.join(lat)} | {fmt(self.m(lab, 'lost'))} | "
                       f"{fmt(self.m(lab, 'cpu_s_per_1k_deliveries'), 4)} | "
                       f"{self.split(lab)} | {len(self.runs(lab))} |")
        return out

    def idle(self) -> list[str]:
        out = ["| server | connections held | connect errors | connect time s | RSS per "
               "connection KiB | server RSS MiB | liveness check lost | runs |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for s in SERVERS:
            lab = f"{s}/idle"
            if not self.runs(lab):
                continue
            out.append(f"| {NAMES[s]} | {fmt(self.m(lab, 'connected'))} | "
                       f"{fmt(self.m(lab, 'connect_errors'))} | "
                       f"{fmt(self.m(lab, 'connect_s'), 1)} | "
                       f"**{fmt(self.m(lab, 'rss_per_connection_kb'), 1)}** | "
                       f"{fmt(self.m(lab, 'server_rss_mb'), 0)} | {fmt(self.m(lab, 'lost'))} | "
                       f"{len(self.runs(lab))} |")
        return out

    def experiments(self) -> list[str]:
        out = ["| variant @ rate | offered deliveries/s | delivered/s | p50 / p99 ms | lost "
               "| server CPU s per 1k | deliveries per frame | runs |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        labels = sorted({r["label"] for rs in self.by.values() for r in rs
                         if r.get("phase") == "exp"}, key=lambda x: (x.split("@")[1], x))
        for lab in labels:
            out.append(f"| {lab} | {fmt(self.m(lab, 'offered_per_s'))} | "
                       f"{fmt(self.m(lab, 'deliveries_per_s'))} | "
                       f"{fmt(self.m(lab, 'latency_ms', 'p50'), 1)} / "
                       f"{fmt(self.m(lab, 'latency_ms', 'p99'), 1)} | "
                       f"{fmt(self.m(lab, 'lost'))} | "
                       f"{fmt(self.m(lab, 'cpu_s_per_1k_deliveries'), 4)} | "
                       f"{fmt(self.m(lab, 'deliveries_per_frame'), 2)} | "
                       f"{len(self.runs(lab))} |")
        return out

    # -- targets --------------------------------------------------------------------

    def targets(self) -> list[str]:
        out = ["| target | measured | verdict |", "|---|---|---|"]

        def row(name: str, value: float | None, limit: float | None, text: str,
                higher_is_better: bool) -> None:
            if value is None or limit is None:
                out.append(f"| {name} | {text} | not measured |")
                return
            ok = value >= limit if higher_is_better else value <= limit
            by = (value / limit) if limit else float("inf")
            verdict = ("**met**" if ok else "**missed**") + f" ({by:.2f}x the limit)"
            out.append(f"| {name} | {text} | {verdict} |")

        sat = {s: self.m(f"{s}/saturation", "saturation_deliveries_per_s") for s in SERVERS}
        ceil = {s: self.m(f"{s}/saturation", "ceiling_deliveries_per_s") for s in SERVERS}
        lr, wr, sr = sat["livehub-redis"], sat["ws-redis"], sat["sio-redis"]
        if sr == 0 and lr:
            out.append("| hot-room saturation, Redis x2: livehub >= 3x python-socketio | "
                       f"{fmt(lr)} vs 0 (python-socketio never held p99 <= 250 ms) | "
                       "**met** |")
        else:
            row("hot-room saturation, Redis x2: livehub >= 3x python-socketio",
                lr, 3 * sr if sr else None, f"{fmt(lr)} vs 3 x {fmt(sr)}", True)
        row("(stricter: livehub's saturation >= 3x python-socketio's ceiling, Redis x2)",
            lr, 3 * ceil["sio-redis"] if ceil["sio-redis"] else None,
            f"{fmt(lr)} vs 3 x {fmt(ceil['sio-redis'])}", True)
        row("hot-room saturation, Redis x2: livehub >= websockets relay",
            lr, wr, f"{fmt(lr)} vs {fmt(wr)}", True)
        lm, wm = sat["livehub"], sat["ws"]
        row("(same, in-memory x1: livehub's saturation >= 3x python-socketio's ceiling)",
            lm, 3 * ceil["sio"] if ceil["sio"] else None,
            f"{fmt(lm)} vs 3 x {fmt(ceil['sio'])}", True)
        row("(same, in-memory x1: livehub >= websockets broadcast)", lm, wm,
            f"{fmt(lm)} vs {fmt(wm)}", True)
        on, off = (self.m("final@high", "cpu_s_per_1k_deliveries"),
                   self.m("coalescing-off@high", "cpu_s_per_1k_deliveries"))
        row("coalescing: CPU s per 1k deliveries near saturation, on <= 1/2 of off",
            on, off / 2 if off else None, f"{fmt(on, 4)} on vs {fmt(off, 4)} off", False)
        dpf = self.m("final@high", "deliveries_per_frame")
        row("coalescing: under backlog at most 1 send per 4 deliveries",
            dpf, 4.0, f"{fmt(dpf, 2)} deliveries per frame", True)
        for group, (lh, ws, sio) in (("in-memory x1", ("livehub", "ws", "sio")),
                                     ("Redis x2", ("livehub-redis", "ws-redis",
                                                   "sio-redis"))):
            lab = f"@half-{sio}"
            p_l = self.m(f"{lh}/hot{lab}", "latency_ms", "p99")
            p_s = self.m(f"{sio}/hot{lab}", "latency_ms", "p99")
            p_w = self.m(f"{ws}/hot{lab}", "latency_ms", "p99")
            row(f"p99 at half of python-socketio's ceiling, {group}: <= 1/2 of socketio's",
                p_l, p_s / 2 if p_s else None, f"{fmt(p_l, 1)} vs {fmt(p_s, 1)} ms", False)
            row(f"p99 at half of python-socketio's ceiling, {group}: <= websockets'",
                p_l, p_w, f"{fmt(p_l, 1)} vs {fmt(p_w, 1)} ms", False)
        rss = {s: self.m(f"{s}/idle", "rss_per_connection_kb") for s in SERVERS}
        row("idle memory per connection <= 1.25x websockets (compression off)",
            rss["livehub"], 1.25 * rss["ws"] if rss["ws"] else None,
            f"{fmt(rss['livehub'], 1)} vs 1.25 x {fmt(rss['ws'], 1)} KiB", False)
        row("idle memory per connection <= 1/2 of python-socketio",
            rss["livehub"], rss["sio"] / 2 if rss["sio"] else None,
            f"{fmt(rss['livehub'], 1)} vs {fmt(rss['sio'], 1)} / 2 KiB", False)
        held = [r for r in self.runs("livehub/idle")]
        ok = [r for r in held if r.get("connected") == r.get("connections")
              and not r.get("connect_errors") and not r.get("lost") and not r.get("closed")]
        n = held[0]["connections"] if held else 0
        out.append(f"| {n:,} concurrent connections held by one process without errors | "
                   f"{len(ok)} of {len(held)} runs clean | "
                   f"{'**met**' if held and len(ok) == len(held) else '**missed**'} |")
        return out

    def render(self) -> str:
        parts = ["### (d) Saturation, hot room (1 x 2,000)", "", *self.saturation(), "",
                 "### (a) Hot room at half of python-socketio's ceiling rate", "",
                 *self.latency_table([(s, f"{s}/hot@half-{_sio_of(s)}") for s in SERVERS]),
                 "",
                 "### (b) Many rooms (50 x 40)", "",
                 *self.latency_table([(s, f"{s}/rooms") for s in SERVERS]), "",
                 "### (c) Idle connections", "", *self.idle(), "",
                 "### livehub experiments (hot room, one process)", "", *self.experiments(),
                 "", "### Targets", "", *self.targets()]
        errors = self.by.get("errors", [])
        if errors:
            parts += ["", "### Runs that failed", ""]
            parts += [f"- {r.get('label')} #{r.get('repeat')}: {r['error'][:300]}"
                      for r in errors]
        return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("jsonl", type=Path, nargs="+",
                    help="suite files; a label in a later file replaces earlier rows")
    a = ap.parse_args()
    print(Report(load_many(a.jsonl)).render())


if __name__ == "__main__":
    main()
