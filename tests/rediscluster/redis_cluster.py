"""A private Redis Cluster for tests: three primaries with a replica each, on loopback.

Every node is a ``redis-server --cluster-enabled yes`` of its own in a temp dir,
without persistence, started and stopped by pid. Ports stay at or below 55535
because a node also listens on ``port + 10000`` (the cluster bus).
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
from typing import Any

import redis
from redis.crc import key_slot

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
NODES = 6
MAX_PORT = 55535


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_base(n: int) -> int:
    """A first port with ``n`` consecutive ports free, and their bus ports too."""
    rng = int.from_bytes(os.urandom(2), "big")
    for i in range(200):
        base = 30000 + (rng + i * 97) % (MAX_PORT - 30000 - n)
        ports = [*range(base, base + n), *range(base + 10000, base + 10000 + n)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free ports for a test Redis Cluster")


class RedisCluster:
    """Six nodes, ``create()``-d into three shards; ``cleanup()`` kills them by pid."""

    def __init__(self, node_timeout_ms: int = 1000) -> None:
        self.node_timeout_ms = node_timeout_ms
        self.dir = Path(tempfile.mkdtemp(prefix="livehub-rcluster-"))
        self.base = _pick_base(NODES)
        self.ports = list(range(self.base, self.base + NODES))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The livehub URL: two seed nodes, as an operator would list them."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                           socket_connect_timeout=1, protocol=2)

    def start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--dir", str(node_dir), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", str(node_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.node(port) as c:
                if c.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"cluster node {port} did not start")

    def create(self) -> RedisCluster:
        for port in self.ports:
            self.start_node(port)
        out = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, timeout=60, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-2000:]!r}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says cluster_state:ok and agrees on three primaries."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._ok(p) for p in self.running()):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis Cluster did not settle")
            time.sleep(0.1)

    def _ok(self, port: int) -> bool:
        with self.node(port) as c:
            info: Any = c.execute_command("CLUSTER INFO")
            if info.get("cluster_state") != "ok":
                return False
            shards = self._slots(c).values()
            primaries = {v["primary"][1] for v in shards}
            # Every primary alive and, with every node up, each with its replica listed.
            with_replicas = all(v["replicas"] for v in shards) or len(self.running()) < NODES
            return len(primaries) == 3 and primaries <= set(self.running()) and with_replicas

    @staticmethod
    def _slots(c: redis.Redis) -> dict[tuple[int, int], dict[str, Any]]:
        raw: Any = c.execute_command("CLUSTER SLOTS")
        out: dict[tuple[int, int], dict[str, Any]] = {}
        for row in raw:
            start, end, primary, *replicas = row
            out[(int(start), int(end))] = {
                "primary": (primary[0].decode(), int(primary[1])),
                "replicas": [(r[0].decode(), int(r[1])) for r in replicas],
            }
        return out

    def running(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def shard_of(self, key: str) -> dict[str, Any]:
        """``{"primary": port, "replicas": [port...]}`` of ``key``'s slot, as nodes see it."""
        slot = key_slot(key.encode())
        with self.node(self.running()[0]) as c:
            for (start, end), v in self._slots(c).items():
                if start <= slot <= end:
                    return {"primary": v["primary"][1],
                            "replicas": [r[1] for r in v["replicas"]]}
        raise RuntimeError(f"slot {slot} not covered")

    def primary_of(self, key: str) -> int:
        port: int = self.shard_of(key)["primary"]
        return port

    def failover(self, replica: int, timeout: float = 20.0) -> None:
        """``CLUSTER FAILOVER`` on ``replica`` (a planned, lossless switch), until settled."""
        with self.node(replica) as c:
            c.execute_command("CLUSTER FAILOVER")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.node(replica) as c:
                role: Any = c.execute_command("ROLE")
                if role[0] == b"master":
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"node {replica} was not promoted")
        self.wait_ok()

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
