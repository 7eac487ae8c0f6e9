"""Out of file descriptors (PROTOCOL.md "Fair limits"), through real server processes.

A server whose open-file limit is low is filled with silent connections: it keeps
serving the connections it has, the head deadline closes the silent ones, and
``/healthz``, a join and a post are served again within 15 s of that. Two ways in:

- the limit is low from the start: livehub keeps its connections below it (the process
  cap), so accepting never fails for want of descriptors;
- the limit is lowered under a running server (``prlimit``), so ``accept`` itself fails
  with EMFILE: uvloop (libuv) then accepts and closes what waits, with a descriptor it
  keeps in reserve, and accepts again once descriptors are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from pathlib import Path

import httpx

from tests.hardening.conftest import ROOMS, Logged, Spawn, assert_no_traceback
from tests.hardening.test_netlimits import ABUSER, HONEST, join, raw

DEADLINE = 3.0  # LIVEHUB_HEADER_TIMEOUT in these tests
SILENT = 400

SITECUSTOMIZE = """\
import os, resource
_n = os.environ.get("LIVEHUB_TEST_NOFILE")
if _n:
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(_n), int(_n)))
"""


def low_fd_env(tmp_path: Path, nofile: int) -> dict[str, str]:
    """Environment that makes the server child lower its own open-file limit at start."""
    site = tmp_path / "lowfd"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": str(site), "LIVEHUB_TEST_NOFILE": str(nofile)}


async def flood(srv: Logged, n: int) -> list[asyncio.StreamWriter]:
    """``n`` connections that never send a byte, from one address."""
    writers = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            _, writer = await raw(srv, ABUSER)
            writers.append(writer)
    return writers


def healthz(port: int) -> bool:
    transport = httpx.HTTPTransport(local_address=HONEST)
    with httpx.Client(transport=transport, timeout=2) as http:
        try:
            return http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.HTTPError:
            return False


async def served_again(srv: Logged, slug: str) -> float:
    """Seconds until /healthz, a join and a post all succeed for a new client."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < DEADLINE + 20:
        try:
            if await asyncio.to_thread(healthz, srv.port):
                client = await asyncio.wait_for(join(srv, slug, HONEST, "Later"), 3)
                answer = await client.request({"t": "post", "text": "served again"})
                await client.close()
                if answer["t"] == "ok":
                    return time.monotonic() - t0
        except (OSError, TimeoutError, AssertionError, Exception):
            pass
        await asyncio.sleep(0.25)
    raise AssertionError("not served again")


async def fill_and_recover(srv: Logged, slug: str) -> list[asyncio.StreamWriter]:
    honest = await join(srv, slug, HONEST, "Honest")
    writers = await flood(srv, SILENT)
    # The connections it has are still served while it is full.
    assert (await honest.request({"t": "post", "text": "while full"}))["t"] == "ok"
    after = await served_again(srv, slug)
    assert after < DEADLINE + 15, after
    assert (await honest.request({"t": "post", "text": "after"}))["t"] == "ok"
    await honest.close()
    return writers


async def test_low_open_file_limit_from_the_start(spawn: Spawn, tmp_path: Path) -> None:
    srv = spawn({**low_fd_env(tmp_path, 200), "LIVEHUB_HEADER_TIMEOUT": str(DEADLINE),
                 "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    assert "capped by the open-file limit" in srv.log_text()
    writers = await fill_and_recover(srv, ROOMS[5])
    for w in writers:
        w.close()
    assert srv.alive()
    assert_no_traceback(srv.log_text())


async def test_emfile_on_accept_does_not_stop_accepting(spawn: Spawn) -> None:
    srv = spawn({"LIVEHUB_HEADER_TIMEOUT": str(DEADLINE),
                 "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    assert srv.proc is not None
    # Below the cap livehub computed at start: accept() itself runs out of descriptors.
    resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (150, 150))
    writers = await fill_and_recover(srv, ROOMS[6])
    for w in writers:
        w.close()
    assert srv.alive()
    assert_no_traceback(srv.log_text())
