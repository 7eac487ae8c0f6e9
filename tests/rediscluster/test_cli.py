"""``--redis redis+cluster://`` for ``serve`` and ``export``: a bad URL is named, not a
traceback; a transcript is read back from the cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import Member
from tests.integration.conftest import write_programme
from tests.rediscluster.conftest import delete_keys
from tests.rediscluster.redis_cluster import RedisCluster
from tests.support import REPO, LivehubProcess

pytestmark = pytest.mark.timeout(60)


def livehub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    return subprocess.run([sys.executable, "-m", "livehub", *args], capture_output=True,
                          text=True, timeout=30, cwd=REPO, env={**base, **(env or {})},
                          check=False)


@pytest.mark.parametrize("url, named", [
    ("redis+cluster://nohostport", "'nohostport' is not HOST:PORT"),
    ("redis+cluster://a:1,", "'(empty)' is not HOST:PORT"),
    ("redis+cluster://a:1/3", "no /DB"),
])
def test_a_bad_cluster_url_is_named(url: str, named: str) -> None:
    for args in (["serve", "--redis", url], ["export", "day1-opening", "--redis", url]):
        out = livehub(*args)
        assert out.returncode != 0 and named in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


async def test_export_reads_a_room_from_the_cluster(redis_cluster: RedisCluster,
                                                    tmp_path: Path) -> None:
    namespace = f"lhx-{uuid.uuid4().hex[:8]}"
    programme = write_programme(tmp_path / "programme.toml", rooms=2)
    env = {"LIVEHUB_PROGRAMME": str(programme), "LIVEHUB_REDIS_NAMESPACE": namespace}
    proc = LivehubProcess(args=["--redis", redis_cluster.url], env=env,
                          log_path=tmp_path / "livehub.log").start()
    try:
        m = Member("room-001", "ann")
        await m.join(proc)
        for text in ("first", "second"):
            assert (await m.post(text))["t"] == "ok"
        await m.close()
        out = livehub("export", "room-001", "--format", "json", "--redis", redis_cluster.url,
                      env={**env, "LIVEHUB_SECRET": "x" * 32})
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        texts = [ev.get("text") for ev in body["events"] if ev["t"] == "msg"]
        assert texts == ["first", "second"], body
    finally:
        proc.terminate()
        delete_keys(redis_cluster, f"{namespace}:*")
