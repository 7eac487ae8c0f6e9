"""bench.silent runs end to end: silent connections are closed by the head deadline while
an honest client's pings and /healthz keep being answered. No timing is asserted beyond
the deadline itself."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO


def test_silent_connections_are_closed_and_the_honest_client_served() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.silent", "--spawn", "livehub", "--count", "20",
         "--seconds", "4", "--env", "LIVEHUB_HEADER_TIMEOUT=1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["opened"] == 20 and result["closed_by_server"] == 20, result
    assert result["answers"] == {"408": 20} and result["still_open"] == 0
    assert result["closed_after_s"]["max"] < 3
    assert result["pings"] > 0 and result["pings_failed"] == 0
    assert result["healthz_failed"] == 0
