"""The deployment recipe's nginx in front of two livehub processes on Redis.

Clients go through nginx only: they join, post across processes, are seen with their own
address (nginx's X-Forwarded-For, believed because nginx is a listed proxy), and live
through a rolling restart (SIGTERM to one process, then the other) with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import websockets

from tests.cluster.conftest import (
    BASE_ENV,
    Member,
    assert_same_gap_free_stream,
    close_all,
    eventually,
)
from tests.deploy.nginx import NGINX, SITE, Nginx, main_conf
from tests.integration.conftest import write_programme
from tests.redis_server import RedisServer
from tests.support import REPO, Closed, LivehubProcess, free_port

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs "
                       "Debian's nginx: apt-get install nginx)"),
]

PROXY = "127.0.0.1"  # nginx's address, as livehub sees it


@dataclass
class Site:
    nginx: Nginx
    procs: list[LivehubProcess]
    make: Any

    def restart(self, i: int) -> None:
        """SIGTERM process ``i``, wait for it to drain and exit, start it again (same port)."""
        self.procs[i].terminate(timeout=20)
        self.procs[i] = self.make(self.procs[i].port, f"{i}-again")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with RedisServer() as redis:
        namespace = f"lhd-{uuid.uuid4().hex[:8]}"
        programme = write_programme(tmp_path / "programme.toml", rooms=4)

        def make(port: int, tag: str) -> LivehubProcess:
            return LivehubProcess(
                port=port, args=["--redis", redis.url, "--forwarded-allow-ips", PROXY],
                env={**BASE_ENV, "LIVEHUB_PROGRAMME": str(programme),
                     "LIVEHUB_REDIS_NAMESPACE": namespace},
                log_path=tmp_path / f"livehub-{tag}.log").start()

        procs = [make(free_port(), str(i)) for i in range(2)]
        nginx = Nginx([p.port for p in procs])
        s = Site(nginx, procs, make)
        try:
            nginx.start()
            yield s
        finally:
            nginx.stop()
            for p in s.procs:
                with contextlib.suppress(Exception):
                    p.terminate(timeout=10)


def via(nginx: Nginx) -> LivehubProcess:
    """Something Member.join accepts: every join goes through nginx."""
    return cast(LivehubProcess, nginx)


async def connections_on(proc: LivehubProcess) -> float:
    async with httpx.AsyncClient(timeout=3) as client:
        text = (await client.get(proc.url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("livehub_connections{"))


async def rejoin(m: Member, nginx: Nginx, attempts: int = 50) -> dict[str, Any]:
    """Join through nginx, retrying while a process is shutting down or starting."""
    for _ in range(attempts):
        try:
            return await m.join(via(nginx))
        except (Closed, OSError, websockets.InvalidStatus, websockets.InvalidHandshake):
            await asyncio.sleep(0.1)
    raise AssertionError(f"{m.sub} could not rejoin through nginx")


def test_nginx_config_of_the_recipe_passes_nginx_t(tmp_path: Path) -> None:
    """The whole site, TLS server included, with a throwaway certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key),
         "-out", str(cert)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("openssl could not make a test certificate")
    site = SITE.read_text()
    site = site.replace("/etc/letsencrypt/live/live.example.gov.uk/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/live.example.gov.uk/privkey.pem", str(key))
    site = site.replace("/etc/nginx/snippets/livehub-locations.conf",
                        str(REPO / "deploy/nginx/livehub-locations.conf"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_conf(tmp_path, site))
    assert NGINX is not None
    out = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site and "Strict-Transport-Security" in site


async def test_join_and_post_across_processes_through_nginx(site: Site) -> None:
    room = "room-000"
    members = [Member(room, f"m{i}") for i in range(4)]
    for m in members:
        await m.join(via(site.nginx))
    # No sticky sessions: nginx spread the people over both processes.
    assert [await connections_on(p) >= 1 for p in site.procs] == [True, True]

    async def chat(m: Member) -> None:
        for j in range(5):
            assert (await m.post(f"{m.sub} says {j}"))["t"] == "ok"

    await asyncio.gather(*(chat(m) for m in members))
    await asyncio.gather(*(m.catch_up(20) for m in members))
    assert_same_gap_free_stream(members, 1, 20)
    # The web client's pages come through too.
    async with httpx.AsyncClient(base_url=site.nginx.url, timeout=5) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
    await close_all(members)


async def test_client_address_is_the_one_nginx_saw(site: Site) -> None:
    """A client on 127.0.0.2 is logged as 127.0.0.2, not as nginx's 127.0.0.1."""
    for _ in range(2):  # one connection per process (round robin)
        async with websockets.connect(f"{site.nginx.ws_url}/ws/no-such-room",
                                      subprotocols=["livehub.v1.json"],  # type: ignore[list-item]
                                      local_addr=("127.0.0.2", 0), open_timeout=5) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
    deadline = time.monotonic() + 5
    while True:
        lines = [line for p in site.procs for line in p.log_text().splitlines()
                 if "no such room" in line]
        if len(lines) >= 2:
            break
        assert time.monotonic() < deadline, "the refusals were not logged"
        await asyncio.sleep(0.05)
    assert all("127.0.0.2" in line for line in lines), lines
    assert sum("no such room" in p.log_text() for p in site.procs) == 2  # one on each


async def test_rolling_restart_through_nginx_loses_nothing(site: Site) -> None:
    room = "room-001"
    n = 60
    posters = [Member(room, f"poster{i}") for i in range(2)]
    listeners = [Member(room, f"listener{i}") for i in range(2)]
    for m in [*posters, *listeners]:
        await m.join(via(site.nginx))
    resumed: list[bool] = []
    stop = asyncio.Event()

    async def post_all(m: Member) -> None:
        for i in range(n):
            rid = f"{m.sub}-{i}"
            while True:
                try:
                    ans = await m.request({"t": "post", "text": f"post {rid}", "id": rid},
                                          timeout=10)
                except (Closed, websockets.ConnectionClosed):
                    resumed.append((await rejoin(m, site.nginx))["recovered"])
                    continue
                if ans["t"] == "ok":
                    break
                assert ans["code"] == "unavailable", ans
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)

    async def listen(m: Member) -> None:
        while not stop.is_set():
            try:
                await m.pump(stop.is_set, 60)
            except Closed:
                resumed.append((await rejoin(m, site.nginx))["recovered"])

    tasks = [asyncio.create_task(post_all(m)) for m in posters]
    followers = [asyncio.create_task(listen(m)) for m in listeners]
    await eventually(lambda: sum(len(m.answers) for m in posters) >= 10, 10, "posting")
    for i in range(2):  # one process at a time: the site stays up throughout
        await asyncio.to_thread(site.restart, i)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    last = 2 * n
    stop.set()
    await asyncio.gather(*followers)
    await asyncio.gather(*(m.catch_up(last, timeout=15) for m in [*posters, *listeners]))
    everyone = [*posters, *listeners]
    assert len(resumed) >= 4 and all(resumed), resumed  # everyone moved, nothing missed
    assert_same_gap_free_stream(everyone, 1, last)
    for m in everyone:
        mids = [ev["mid"] for ev in m.msgs()]
        assert len(mids) == len(set(mids)) == last
    await close_all(everyone)
