"""Retention through real processes: `livehub archive` and the servers' own archiver.

A room whose session ended in 2009 holds thousands of events in the shared Redis (under
a namespace of this test's own); archiving trims its stream, and the transcript (md,
csv, json, over HTTP and from `livehub export`), the public record, a resume within the
kept tail and a freshly loaded replica all stay as they were.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from livehub.broker.redis import RedisBroker
from tests.ops.helpers import bearer, clean_env, cli, fetch
from tests.support import Client, LivehubProcess, token

REDIS_URL = os.environ.get("LIVEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BULK = 2400  # posts committed straight to the log, so the test takes seconds
KEEP = 50

PROGRAMME = """[conference]
title = "Retention Test"

[[session]]
slug = "ended"
title = "A session long over"
starts = 2009-04-06T09:00:00Z
ends = 2009-04-06T10:00:00Z

[[session]]
slug = "ended-2"
title = "Another one long over"
starts = 2009-04-07T09:00:00Z
ends = 2009-04-07T10:00:00Z

[[session]]
slug = "timeless"
title = "No end given"
"""


@pytest.fixture
async def ns(tmp_path: Path) -> AsyncIterator[str]:
    admin = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        await admin.ping()
    except Exception as exc:
        await admin.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    name = f"tretain{uuid.uuid4().hex[:10]}"
    yield name
    async for key in admin.scan_iter(match=f"{name}:*", count=1000):
        await admin.delete(key)
    await admin.aclose()


def env(ns: str, programme: Path, **extra: str) -> dict[str, str]:
    return {"LIVEHUB_REDIS_URL": REDIS_URL, "LIVEHUB_REDIS_NAMESPACE": ns,
            "LIVEHUB_PROGRAMME": str(programme), "LIVEHUB_RETAIN_KEEP": str(KEEP), **extra}


async def bulk(ns: str, room: str, n: int) -> None:
    broker = RedisBroker(REDIS_URL, namespace=ns)
    await broker.start()
    try:
        for start in range(0, n, 200):
            await broker.commit(room, [
                {"t": "msg", "mid": f"bulk{i}", "uid": "ann-1", "name": "Ann",
                 "role": "participant", "text": f"Point {i}: " + "more " * (i % 9),
                 "ts": 1_239_008_400_000 + i * 1000}
                for i in range(start, min(n, start + 200))])
    finally:
        await broker.close()


async def transcripts(server: LivehubProcess, room: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for fmt in ("md", "csv", "json"):
        r = await fetch("GET", f"{server.url}/api/rooms/{room}/transcript?format={fmt}",
                        headers=bearer("moderator"))
        assert r.status_code == 200, r.text
        out[fmt] = r.text
    r = await fetch("GET", f"{server.url}/record/{room}")
    assert r.status_code == 200, r.text
    out["record"] = r.text
    return out


async def xlen(ns: str, room: str) -> int:
    admin = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        return int(await admin.xlen(f"{ns}:{{{room}}}:log"))
    finally:
        await admin.aclose()


async def session(server: LivehubProcess, room: str, ns: str) -> dict[str, Any]:
    """A question early on, thousands of posts, then the room closed; its last welcome."""
    mod = await Client.join(server.ws_url, room, token=token("moderator", "Mo", sub="mod-1"))
    ann = await Client.join(server.ws_url, room, token=token("participant", "Ann", sub="ann-1"))
    assert (await ann.request({"t": "ask", "text": "Will this be minuted?", "id": "a"}))["t"] \
        == "ok"
    # Nobody is listening while thousands of posts arrive at once: a client that does not
    # read them would (rightly) be closed 1013 when its send queue overflows.
    await ann.close()
    await mod.close()
    await bulk(ns, room, BULK)
    mod = await Client.join(server.ws_url, room, token=token("moderator", "Mo", sub="mod-1"))
    ann = await Client.join(server.ws_url, room, token=token("participant", "Ann", sub="ann-1"))
    for i in range(3):
        assert (await ann.request({"t": "post", "text": f"Late {i}", "id": f"p{i}"}))["t"] == "ok"
    assert (await mod.request({"t": "settings", "state": "closed", "id": "c"}))["t"] == "ok"
    await ann.close()
    await mod.close()
    last = await Client.join(server.ws_url, room, token=token("moderator", "Mo", sub="mod-1"))
    await last.close()
    return last.welcome


async def test_archive_cli_keeps_every_transcript(ns: str, tmp_path: Path) -> None:
    programme = tmp_path / "programme.toml"
    programme.write_text(PROGRAMME)
    # This server never archives by itself (0): the CLI does it here.
    server = LivehubProcess(env=env(ns, programme, LIVEHUB_RETAIN_AFTER="0"),
                            log_path=tmp_path / "a.log").start()
    fresh: LivehubProcess | None = None
    try:
        welcome = await session(server, "ended", ns)
        head, epoch = welcome["seq"], welcome["epoch"]
        before = await transcripts(server, "ended")
        cli_env = clean_env(**env(ns, programme))
        exported = cli("export", "ended", "--format", "md", env=cli_env)
        assert exported.returncode == 0, exported.stderr
        assert "Will this be minuted?" in before["md"] and "Will this be minuted?" in \
            before["record"]

        dry = cli("archive", "--dry-run", env=cli_env)
        assert dry.returncode == 0, dry.stderr
        assert "ended: would archive 2000 events" in dry.stdout, dry.stdout
        assert await xlen(ns, "ended") == head

        t0 = time.monotonic()
        run = cli("archive", env=cli_env)
        took = time.monotonic() - t0
        assert run.returncode == 0, run.stderr
        assert f"ended: archived 2000 events, trim 2000, keep {head - 2000}" in run.stdout
        assert "timeless" not in run.stdout  # no end: never trimmed
        assert await xlen(ns, "ended") == head - 2000
        print(f"archive CLI run over {head} events: {took:.2f}s")

        # The whole record, read through the archive, byte for byte.
        assert await transcripts(server, "ended") == before
        again = cli("export", "ended", "--format", "md", env=cli_env)
        assert again.returncode == 0 and again.stdout == exported.stdout and \
            "no longer reaches" not in again.stderr

        # A second run has nothing left to do.
        second = cli("archive", env=cli_env)
        assert "ended: archived 0 events, trim 0" in second.stdout, second.stdout

        # A resume within the kept tail recovers; a process loading the room afresh
        # folds the archived question and the closing from the log.
        fresh = LivehubProcess(env=env(ns, programme, LIVEHUB_RETAIN_AFTER="0"),
                               log_path=tmp_path / "b.log").start()
        near = await Client.join(fresh.ws_url, "ended", since=head - 10, epoch=epoch,
                                 token=token("moderator", "Mo", sub="mod-1"))
        assert near.welcome["recovered"] is True
        assert [e["seq"] for e in near.welcome["history"]][-10:] == list(
            range(head - 9, head + 1))
        assert [q["text"] for q in near.welcome["questions"]] == ["Will this be minuted?"]
        assert near.welcome["room"]["state"] == "closed"
        await near.close()
        assert await transcripts(fresh, "ended") == before
    finally:
        server.terminate()
        if fresh is not None:
            fresh.terminate()


async def test_servers_archive_once_by_themselves(ns: str, tmp_path: Path) -> None:
    programme = tmp_path / "programme.toml"
    programme.write_text(PROGRAMME)
    await bulk(ns, "ended-2", 1500)
    await bulk(ns, "timeless", 1500)
    servers = [LivehubProcess(env=env(ns, programme, LIVEHUB_RETAIN_INTERVAL="0.3"),
                              log_path=tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for s in servers:
            s.start()
        deadline = time.monotonic() + 20
        while await xlen(ns, "ended-2") == 1500:
            assert time.monotonic() < deadline, "no server archived the room"
            await asyncio.sleep(0.1)
        assert await xlen(ns, "ended-2") == 500
        await asyncio.sleep(1.0)  # a few more passes: nothing more to do
        assert await xlen(ns, "timeless") == 1500
        logs = [s.log_text() for s in servers]
        assert sum(text.count("room archived") for text in logs) == 1, logs
    finally:
        for s in servers:
            s.terminate()


async def test_archive_cli_names_what_is_wrong(ns: str, tmp_path: Path) -> None:
    programme = tmp_path / "programme.toml"
    programme.write_text(PROGRAMME)
    admin = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        await admin.set(f"{ns}:lock:archiver", "another-process", px=30_000)
        held = cli("archive", env=clean_env(**env(ns, programme)))
        assert held.returncode != 0 and "another process is archiving" in held.stderr
        assert "Traceback" not in held.stderr
    finally:
        await admin.aclose()
    no_redis = cli("archive", env=clean_env(LIVEHUB_PROGRAMME=str(programme)))
    assert no_redis.returncode != 0 and "no Redis configured" in no_redis.stderr
    bad = cli("archive", env=clean_env(**env(ns, programme, LIVEHUB_RETAIN_AFTER="-1")))
    assert bad.returncode != 0 and "retain_after" in bad.stderr
    assert "Traceback" not in bad.stderr
    never = cli("archive", env=clean_env(**env(ns, programme, LIVEHUB_RETAIN_AFTER="0")))
    assert never.returncode == 0 and "never trimmed" in never.stderr
    down = cli("archive", "--redis", "redis://127.0.0.1:1/0",
               env=clean_env(LIVEHUB_PROGRAMME=str(programme)))
    assert down.returncode != 0 and "cannot archive in Redis at" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
