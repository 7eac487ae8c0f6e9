"""/metrics before and after known traffic: the counters move by exactly that much.

Room used here: members (tokens only; nothing else in the ops tests uses it).
"""

from __future__ import annotations

import asyncio
import time

from tests.ops.helpers import bearer, fetch, sample, scrape
from tests.support import Client, LivehubProcess, token

ROOM = "members"


async def test_counters_move_by_the_traffic(ops: LivehubProcess) -> None:
    a = await Client.join(ops.ws_url, ROOM, token=token("participant", "Ann", sub="m-ann"))
    b = await Client.join(ops.ws_url, ROOM, token=token("participant", "Bob", sub="m-bob"))
    await asyncio.sleep(0.6)  # let presence settle: no frames of its own during the count
    a.drain()
    b.drain()
    before = scrape(ops.url)
    assert sample(before, "livehub_connections", state="open") >= 2
    assert sample(before, "livehub_rooms", state="open") >= 1

    for i in range(3):
        assert (await a.request({"t": "post", "text": f"counted {i}"}))["t"] == "ok"
    denied = await a.request({"t": "pin", "mid": "whatever"})
    assert denied["code"] == "forbidden"
    missing = await b.request({"t": "vote", "qid": "no-such-question", "up": True})
    assert missing["code"] == "not_found"
    r = await fetch("POST", f"{ops.url}/api/rooms/{ROOM}/announce",
                    json={"text": "counted too"}, headers=bearer())
    assert r.status_code == 201
    for client in (a, b):
        await client.recv_until(lambda e: e.get("text") == "counted too")
    after = scrape(ops.url)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("livehub_requests_total", type="post", outcome="ok") == 3
    assert moved("livehub_requests_total", type="pin", outcome="forbidden") == 1
    assert moved("livehub_requests_total", type="vote", outcome="not_found") == 1
    assert moved("livehub_requests_total", type="announce", outcome="ok") == 1
    assert moved("livehub_events_committed_total") == 4
    assert moved("livehub_events_applied_total") == 4
    assert moved("livehub_commit_seconds_count") == 4
    assert moved("livehub_commit_seconds_sum") > 0
    assert moved("livehub_deliveries_total") == 4 * 2  # four events to two people
    # Ann: 3 msg + 3 ok + 1 error + 1 announcement; Bob: 3 msg + 1 error + 1 announcement.
    assert moved("livehub_frames_sent_total") == 13
    assert moved("livehub_api_requests_total", endpoint="announce", status="201") == 1
    assert moved("livehub_slow_reader_closes_total") == 0
    assert moved("livehub_broker_errors_total", op="commit") == 0
    assert moved("livehub_connections", state="open") == 0

    await a.close()
    await b.close()
    deadline = time.monotonic() + 5
    while True:
        now = scrape(ops.url)
        if sample(now, "livehub_connections", state="open") == sample(
                after, "livehub_connections", state="open") - 2:
            break
        assert time.monotonic() < deadline, "the connections gauge did not go down by 2"
        await asyncio.sleep(0.05)


def test_every_metric_is_named_livehub(ops: LivehubProcess) -> None:
    names = {name for name, _ in scrape(ops.url)}
    assert names and all(name.startswith("livehub_") for name in names)
    for family in ("livehub_events_committed_total",
                   "livehub_deliveries_total", "livehub_coalesced_frames_total",
                   "livehub_slow_reader_closes_total", "livehub_broker_reconnects",
                   "livehub_commit_seconds_bucket"):
        assert any(name == family for name in names), family
