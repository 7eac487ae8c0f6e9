"""Fixtures for the hardening tests: servers with lowered limits, and their logs.

Every test here runs against real ``livehub serve`` processes (``LivehubProcess``),
each with its own log file, so a test can read what the server said about it.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import LivehubProcess

# Room slugs in the hardening programme; every room takes guests and has no slow mode.
ROOMS = [f"hard-{i:02d}" for i in range(40)]


def write_programme(path: Path, rooms: list[str] = ROOMS) -> Path:
    body = ['[conference]\ntitle = "Hardening"\n']
    body += [f'\n[[session]]\nslug = "{slug}"\ntitle = "Room {slug}"\n' for slug in rooms]
    path.write_text("".join(body))
    return path


class Logged(LivehubProcess):
    """A server process whose log the test reads, line by line, from a mark."""

    def mark(self) -> int:
        return len(self.log_text())

    def lines_since(self, mark: int) -> list[str]:
        return self.log_text()[mark:].splitlines()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return self.alive() and httpx.get(self.url + "/healthz", timeout=5).status_code == 200

    def online(self, room: str) -> int:
        rooms = httpx.get(self.url + "/api/rooms", timeout=5).json()
        rooms = rooms if isinstance(rooms, list) else rooms.get("rooms", [])
        return int(next(r for r in rooms if r["id"] == room)["online"])

    def metric(self, name: str) -> float:
        """The sum of every sample of one metric from ``/metrics``."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head == name or head.startswith(name + "{"):
                    total += float(value)
        return total


Spawn = Callable[..., Logged]


def start_server(directory: Path, env: dict[str, str] | None = None,
                 args: list[str] | None = None, name: str = "livehub") -> Logged:
    """A server on the hardening programme, logging to ``directory/name.log``."""
    programme = directory / "programme.toml"
    if not programme.exists():
        write_programme(programme)
    proc = Logged(env={"LIVEHUB_PROGRAMME": str(programme), **(env or {})}, args=args,
                  log_path=directory / f"{name}.log")
    proc.start()
    return proc


def stop_server(proc: Logged) -> None:
    if proc.alive():
        proc.terminate(timeout=15)
    proc.kill()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start servers with extra environment; each is stopped by pid at the end."""
    started: list[Logged] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None,
              name: str = "livehub") -> Logged:
        proc = start_server(tmp_path, env, args, f"{name}-{len(started)}")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_server(proc)


TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Exception in ASGI|"
                       r"connection failed|\[error|\[critical")


def assert_no_traceback(log: str) -> None:
    """The server logged no traceback and no error: client mistakes are not our errors."""
    bad = [line for line in log.splitlines() if TRACEBACK.search(line)]
    assert not bad, "the server logged errors:\n" + "\n".join(bad[:20])


def rss(pid: int) -> int:
    """Resident memory of a process in bytes: psutil when installed, else /proc (Linux)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process(pid).memory_info().rss)


async def eventually(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.05)
