"""Running livehub under uvicorn: one process, or N workers sharing a port.

uvicorn's own shutdown closes WebSockets with 1012 before the app hears of
it; :class:`LivehubServer` first lets the hub finish in-flight commits and
close every client with 1013 (PROTOCOL.md), so they resume elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import structlog
import uvicorn

from livehub.api import install_reload_signal
from livehub.app import create_app
from livehub.config import Config
from livehub.hub import Hub
from livehub.logs import configure
from livehub.netguard import NetGuard, http_protocol, raise_open_file_limit
from livehub.transport import WebSocketTransport

log = structlog.get_logger("livehub.server")

KEEP_ALIVE_IDLE = 5  # seconds a keep-alive connection may idle between requests


class LivehubServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        install_reload_signal(self.config.app)  # SIGHUP re-reads the programme
        await super().startup(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the server gracefully. uvicorn's own version re-raises
        the signal once stopped (death by signal); a stop on SIGTERM is a success (exit
        0) here, while SIGINT still ends in KeyboardInterrupt as at a terminal."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        received: list[int] = []

        def handler(sig: int, frame: FrameType | None) -> None:
            received.append(sig)
            self.handle_exit(sig, frame)

        original = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, previous in original.items():
                signal.signal(sig, previous)
            if signal.SIGINT in received:
                signal.raise_signal(signal.SIGINT)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        for server in self.servers:
            server.close()  # stop accepting first
        await self.hub.stop()
        # Let clients answer the 1013 close frames before uvicorn closes the sockets:
        # closing one while its client is still sending (mid-burst) makes the kernel reset
        # the connection, which throws away what was still on its way to the client (the
        # last `ok`s and the close frame itself).
        deadline = min(time.monotonic() + 2.0, started + self.hub.config.shutdown_grace + 1)
        while time.monotonic() < deadline:
            if not any(isinstance(c, WebSocketTransport) and c.closing
                       for c in self.server_state.connections):
                break
            await asyncio.sleep(0.02)
        await super().shutdown(sockets)


class GuardedWebSocketProtocol(WebSocketTransport):
    """Frees the connection's place in the :class:`NetGuard` counts when it closes."""

    netguard: NetGuard  # set on the class that :func:`uvicorn_config` makes

    __slots__ = ()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self.transport is not None:
                self.netguard.closed(self.transport)


def uvicorn_config(cfg: Config, app: Any, guard: NetGuard | None = None) -> uvicorn.Config:
    guard = guard or NetGuard.from_config(cfg)
    ws: type[asyncio.Protocol] = type("LivehubWebSocketProtocol", (GuardedWebSocketProtocol,),
                                      {"netguard": guard, "__slots__": ()})
    return uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        loop="uvloop",
        http=http_protocol(guard),
        ws=ws,
        ws_max_size=cfg.max_frame,
        ws_ping_interval=cfg.ping_interval or None,
        ws_ping_timeout=cfg.ping_timeout or None,
        ws_per_message_deflate=cfg.compression,
        lifespan="on",
        log_config=None,
        access_log=False,
        # livehub.client_address owns the client address rule (and ignores uvicorn's
        # FORWARDED_ALLOW_IPS); livehub.netguard owns the head deadline.
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_IDLE,
        timeout_graceful_shutdown=max(1, int(cfg.shutdown_grace)),
    )


def run(cfg: Config, sock: socket.socket | None = None) -> None:
    """Serve in this process until SIGTERM or SIGINT."""
    configure(cfg.log_format, cfg.log_level)
    if os.environ.get("FORWARDED_ALLOW_IPS"):
        log.warning("FORWARDED_ALLOW_IPS (uvicorn's) is ignored: livehub trusts the proxies "
                    "of --forwarded-allow-ips / LIVEHUB_FORWARDED_ALLOW_IPS",
                    forwarded_allow_ips=cfg.forwarded_allow_ips)
    raise_open_file_limit()
    app = create_app(cfg)
    server = LivehubServer(uvicorn_config(cfg, app), app.state.hub)
    server.run(sockets=[sock] if sock is not None else None)


def _worker(cfg: Config, sock: socket.socket) -> None:
    run(cfg, sock)


def run_workers(cfg: Config, workers: int) -> None:
    """N processes accepting on one socket; a worker that dies is replaced."""
    configure(cfg.log_format, cfg.log_level)
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((cfg.host, cfg.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    procs: list[Any] = []

    def reload(signum: int, frame: Any) -> None:
        for proc in procs:  # each worker re-reads the programme itself
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for _ in range(workers):
        proc = ctx.Process(target=_worker, args=(cfg, sock), daemon=False)
        proc.start()
        procs.append(proc)
    log.info("workers started", workers=workers, pids=[p.pid for p in procs])
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            if not proc.is_alive() and not stopping:
                log.warning("worker died; replacing it", pid=proc.pid, code=proc.exitcode)
                procs[i] = ctx.Process(target=_worker, args=(cfg, sock), daemon=False)
                procs[i].start()
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + cfg.shutdown_grace + 2
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
    sock.close()
