"""Starting, measuring and stopping the servers under test (each its own process tree).

=================  ==========================================================
``livehub``        ``livehub serve`` (through :mod:`bench.lh_serve`), in-memory broker
``livehub-redis``  the same with ``--redis URL --workers 2``
``ws``             :mod:`bench.peers.ws_server`, one process
``ws-redis``       the same relaying through Redis pub/sub, 2 processes
``sio``            :mod:`bench.peers.sio_server` (python-socketio, ASGI, uvicorn)
``sio-redis``      the same with ``AsyncRedisManager``, 2 processes
=================  ==========================================================
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-not-for-production"
KINDS = ("livehub", "livehub-redis", "ws", "ws-redis", "sio", "sio-redis")

try:
    import psutil
except ImportError:  # the smoke test runs with the test extra only
    psutil = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dialect_of(kind: str, codec: str = "msgpack") -> str:
    if kind.startswith("sio"):
        return "socketio"
    return "livehub-json" if codec == "json" and kind.startswith("livehub") else "livehub-msgpack"


def processes_of(kind: str) -> int:
    return 2 if kind.endswith("-redis") else 1


def write_programme(path: Path, rooms: list[str]) -> None:
    body = ['[conference]\ntitle = "Benchmark"\n']
    for slug in rooms:
        body.append(f'\n[[session]]\nslug = "{slug}"\ntitle = "{slug}"\nguests = true\n'
                    "premoderate = false\nslow_mode = 0\n")
    path.write_text("".join(body))


# --- process accounting (psutil, or /proc where psutil is missing) ---------------------


def _proc_tree(pid: int) -> list[int]:
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        out = []
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(p.cmdline()):
                    out.append(p.pid)
        return out
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmd:
                pids.append(kid)
            frontier.append(kid)
    return pids


def renice(pids: list[int], nice: int) -> None:
    """Run ``pids`` at ``nice`` (negative needs root; silently left alone without it).

    With the kernel's autogroups (``/proc/sys/kernel/sched_autogroup_enabled``) CPU is
    shared fairly between sessions first, so the session's group gets ``nice`` too."""
    if not nice:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        if psutil is not None:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_times(pids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        if psutil is not None:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                out[pid] = t.user + t.system
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


# --- a server under test ------------------------------------------------------------


@dataclass
class Server:
    kind: str
    rooms: list[str]
    workdir: Path
    redis_url: str = "redis://127.0.0.1:6379/0"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    log_path: Path | None = None
    nice: int = 0

    def command(self) -> tuple[list[str], dict[str, str]]:
        py = sys.executable
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LIVEHUB_") and k not in ("REDIS_URL", "PORT")}
        port = str(self.port)
        redis = self.kind.endswith("-redis")
        if self.kind.startswith("livehub"):
            programme = self.workdir / "programme.toml"
            write_programme(programme, self.rooms)
            env.update({
                "LIVEHUB_SECRET": SECRET, "LIVEHUB_ENV": "test", "LIVEHUB_LOG_LEVEL": "warning",
                # Load clients are guests from one address: like an operator running a
                # load test, the benchmark turns the per-address and per-person limits off.
                "LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "0",
                "LIVEHUB_GUEST_ADDRESS_RATE": "0", "LIVEHUB_GUEST_VOTES_PER_ADDRESS": "0",
                "LIVEHUB_GUEST_NAMES_PER_HOUR": "0",
                "LIVEHUB_HELLO_TIMEOUT": "30", "LIVEHUB_PROGRAMME": str(programme),
            })
            cmd = [py, "-m", "bench.lh_serve", "serve", "--port", port]
            if redis:
                cmd += ["--redis", self.redis_url, "--workers", "2"]
        else:
            module = "bench.peers.ws_server" if self.kind.startswith("ws") else \
                "bench.peers.sio_server"
            cmd = [py, "-m", module, "--port", port]
            if redis:
                cmd += ["--redis", self.redis_url, "--workers", "2"]
        env.update(self.env)
        return cmd, env

    def start(self, timeout: float = 30.0) -> Server:
        self.port = self.port or free_port()
        cmd, env = self.command()
        self.log_path = self.workdir / f"{self.kind}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        renice([self.proc.pid], self.nice)
        want = 1 + processes_of(self.kind) if processes_of(self.kind) > 1 else 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self._accepts() and len(_proc_tree(self.proc.pid)) >= want:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"{self.kind} did not start in {timeout} s: {self.log_tail()}")
        time.sleep(1.0 if want > 1 else 0.3)  # let every worker reach accept()
        self.pids = _proc_tree(self.proc.pid)
        renice(self.pids, self.nice)
        return self

    def _accepts(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def log_tail(self, n: int = 2000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-n:]

    def rss(self) -> int:
        return rss_bytes(self.pids)

    def cpu(self) -> dict[int, float]:
        return cpu_times(self.pids)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group we started, then SIGKILL what is left (by pid)."""
        if self.proc is None:
            return
        pids = set(self.pids) | set(_proc_tree(self.proc.pid)) | {self.proc.pid}
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class PrivateRedis:
    """A redis-server of our own on a free port (no persistence), so that the benchmark
    neither measures nor disturbs other users of the shared one. Stopped by pid."""

    def __init__(self, nice: int = 0) -> None:
        self.port = free_port()
        self.nice = nice
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found; pass --redis URL")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        renice([self.proc.pid], self.nice)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def redis_cpu(url: str) -> float | None:
    """Redis's own CPU seconds so far (INFO cpu), or None without Redis."""
    try:
        import redis

        info: dict[str, Any] = redis.Redis.from_url(url, socket_timeout=2).info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except Exception:
        return None


def redis_cleanup(url: str, prefix: str) -> None:
    """Delete the keys a livehub run left for its rooms (``livehub:{<prefix>...``)."""
    with contextlib.suppress(Exception):
        import redis

        r = redis.Redis.from_url(url, socket_timeout=5)
        keys = list(r.scan_iter(match=f"livehub:{{{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            r.unlink(*keys[i:i + 500])
