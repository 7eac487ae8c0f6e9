"""Running a peer server in N processes that share one port (SO_REUSEPORT)."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any


def reuseport_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_processes(target: Callable[..., Any], workers: int, args: tuple[Any, ...]) -> None:
    """One process: run ``target(*args)`` here. More: spawn them and wait for SIGTERM."""
    raise_nofile()
    if workers <= 1:
        target(*args)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args, daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(p.is_alive() for p in procs):
        time.sleep(0.2)
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def serve_main(doc: str | None, worker: Callable[..., Any], default_port: int) -> None:
    """The command line every peer shares: host, port, optional Redis, workers."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=default_port)
    ap.add_argument("--redis", default=None)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    run_processes(worker, a.workers, (a.host, a.port, a.redis))
