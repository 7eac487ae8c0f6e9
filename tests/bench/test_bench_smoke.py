"""The benchmark harness runs end to end: a tiny livehub run, one JSON line, nothing lost.

No timing is asserted (CI machines vary); this proves that the load generator, the
server launcher and the report still work together.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

KEYS = (
    "deliveries_per_s", "latency_ms", "lost", "connect_s", "connect_ms", "server_rss_mb",
    "server_cpu_s", "client_cpu_s", "deliveries", "expected", "connected",
)


def test_smoke_run_completes_with_every_key_and_nothing_lost() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--server", "livehub", "--scenario", "smoke",
         "--clients", "1", "--nice", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    for key in KEYS:
        assert key in result, key
    assert set(result["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["connected"] == result["connections"] == 10
    assert result["connect_errors"] == 0
    assert result["expected"] > 0
    assert result["deliveries"] == result["expected"]
    assert result["lost"] == 0 and result["dups"] == 0 and result["closed"] == 0
    assert result["errors"] == 0
