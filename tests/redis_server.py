"""A private ``redis-server`` for tests that stop, restart, pause or reconfigure Redis.

Tests that break Redis on purpose must not do it to the shared server other
tests (and other people) use, so each gets its own process on a free loopback
port in a temp dir::

    with RedisServer(appendonly=True) as server:
        url = server.url
        server.stop()      # by pid; SIGTERM (clean) or kill=True (SIGKILL)
        server.restart()   # same port, same dir: AOF data survives if enabled

Synchronous on purpose: usable from sync fixtures and, briefly, from async tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def free_port() -> int:
    """A loopback port that was free a moment ago (the usual small race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(
        self, *, appendonly: bool = False, port: int | None = None,
        extra_args: list[str] | None = None, start_timeout: float = 5.0,
    ) -> None:
        self.appendonly = appendonly
        self.port = port or 0
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="livehub-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _args(self) -> list[str]:
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]
        if self.appendonly:
            # fsync every write so a SIGKILL loses nothing a test committed.
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + self.extra_args

    def start(self) -> RedisServer:
        if self.running:
            return self
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            self.proc = subprocess.Popen(
                self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return self
                time.sleep(0.01)
            self._reap()
        log = self.dir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self, *, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the server by pid. SIGTERM lets it finish writing its AOF."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self, *, kill: bool = False) -> RedisServer:
        """Stop (if running) and start again on the same port and directory."""
        if not self.port:
            raise RuntimeError("restart() before start()")
        self.stop(kill=kill)
        return self.start()

    def cleanup(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
