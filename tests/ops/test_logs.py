"""LIVEHUB_LOG_FORMAT=json: the server's log is one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TEST_PROGRAMME
from tests.ops.helpers import bearer, fetch
from tests.support import Client, LivehubProcess


async def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    server = LivehubProcess(env={"LIVEHUB_PROGRAMME": TEST_PROGRAMME,
                                 "LIVEHUB_LOG_FORMAT": "json"},
                            log_path=tmp_path / "livehub.log").start()
    try:
        client = await Client.join(server.ws_url, "lobby", name="Logged")
        assert (await client.request({"t": "post", "text": "hello"}))["t"] == "ok"
        refused = await Client.connect(server.ws_url, "no-such-room")
        assert (await refused.expect_close()).code == 4404
        r = await fetch("POST", f"{server.url}/api/rooms/lobby/announce",
                        json={"text": "logged"}, headers=bearer(sub="org-log"))
        assert r.status_code == 201
        await client.close()
    finally:
        server.terminate()
    records = []
    for line in server.log_text().splitlines():
        if line.startswith("livehub: "):
            continue  # the CLI's start-up banner on standard output, not a log line
        record = json.loads(line)
        assert isinstance(record, dict)
        assert {"event", "level", "logger", "timestamp"} <= record.keys(), record
        assert record["timestamp"].endswith("Z")
        records.append(record)
    events = {r["event"]: r for r in records}
    assert "livehub ready" in events  # livehub's own lines
    assert any(r["logger"].startswith("uvicorn") for r in records)  # and uvicorn's
    refusal = events["connection refused"]
    assert refusal["room"] == "no-such-room" and refusal["level"] == "info"
    posted = events["announcement posted"]
    assert posted["room"] == "lobby" and posted["uid"] == "org-log"
    assert posted["endpoint"] == "announce" and posted["seq"] == 2
