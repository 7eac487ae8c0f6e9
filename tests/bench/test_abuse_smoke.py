"""bench.abuse runs end to end with the limits on: a tiny run (3 s phases) where vote
stuffing, post flooding and silent connections meet the fair limits of issue 20 while
honest clients are served. No timing is asserted (CI machines vary); the limits are."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

CAP, RATE = 5, 10


def test_abuse_is_held_to_the_limits_and_honest_clients_are_served() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.abuse", "--seconds", "3", "--honest", "10",
         "--flooders", "5", "--silent", "20", "--stuffers", "3", "--lead", "2",
         "--env", f"LIVEHUB_GUEST_VOTES_PER_ADDRESS={CAP}",
         "--env", f"LIVEHUB_GUEST_ADDRESS_RATE={RATE}"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    summary, abuse = result["summary"], result["abuse"]
    # Vote stuffing: many fresh guests voted, at most the cap counted.
    assert summary["votes_attempted"] > CAP, summary
    assert summary["votes_counted"] is not None and summary["votes_counted"] <= CAP, summary
    assert abuse["stuffing"]["vote_answers"].get("ok", 0) <= CAP
    # Post flooding: a 3 s phase fits in one 10 s window, so at most RATE were accepted.
    flooding = abuse["flooding"]
    assert flooding["connected"] == 5 and flooding["sent"] > RATE, flooding
    assert flooding["answers"].get("ok", 0) <= RATE, flooding
    assert flooding["answers"].get("rate_limited", 0) >= flooding["sent"] - RATE
    # Silent connections were accepted (and are the deadline's to close: not in 3 s).
    assert abuse["silent"]["opened"] == 20
    # Honest clients, quiet and under abuse: all joined, nothing refused, events timed.
    for phase in ("quiet", "abuse"):
        honest = result[phase]["honest"]
        assert honest["connected"] == 10 and honest["connect"] == 0, (phase, honest)
        assert set(honest["posts"]) == {"ok"} and set(honest["votes"]) == {"ok"}, honest
        assert honest["closed"] == 0 and honest["unanswered"] == 0, honest
        assert honest["events_timed"] > 0 and honest["ping_to_event_ms"]["p99"] is not None
