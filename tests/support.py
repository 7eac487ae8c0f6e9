"""Test support: real server processes and a protocol client.

``LivehubProcess`` runs ``livehub serve`` as a child process on a free port;
``Client`` speaks the wire protocol with the independent ``msgpack`` library
or JSON, reading coalesced frames map by map as PROTOCOL.md requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import websockets
from websockets.asyncio.client import ClientConnection

from livehub.auth import mint
from livehub.roles import Role

SECRET = "test-secret-for-livehub-tests-only"
ROOM = "day1-opening"  # in the bundled sample; slow_mode 10 there
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def token(role: str = "participant", name: str | None = None, sub: str | None = None,
          rooms: list[str] | None = None, ttl: int = 3600, secret: str = SECRET) -> str:
    return mint(secret, name=name or role.title(), role=Role(role), sub=sub, rooms=rooms,
                ttl=ttl)


class LivehubProcess:
    """``livehub serve`` in a child process, stopped by pid."""

    def __init__(self, *, port: int | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.env = env or {}
        self.args = args or []
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.module = "livehub"  # what `python -m` runs (tests.faulty_serve injects faults)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 40.0) -> LivehubProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LIVEHUB_") and k not in ("REDIS_URL", "PORT")}
        env.update({"LIVEHUB_SECRET": SECRET, "LIVEHUB_ENV": "test",
                    "LIVEHUB_LOG_LEVEL": "info"})
        env.update(self.env)
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "serve", "--port", str(self.port), *self.args],
            env=env, cwd=REPO, stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"livehub exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("livehub did not start in time")

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close_log()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class Client:
    """A protocol client. Events land in ``inbox``; ``request`` waits for its answer."""

    def __init__(self, ws: ClientConnection, codec: str) -> None:
        self.ws = ws
        self.codec = codec
        self.inbox: deque[dict[str, Any]] = deque()
        self.frames = 0
        self._ids = 0
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, base: str, room: str = ROOM, codec: str = "json",
                      origin: str | None = None, subprotocols: list[str] | None = None,
                      source: str | None = None) -> Client:
        """``source``: the loopback address to connect from (127.0.0.2, ...), so that
        tests can be several client addresses."""
        if subprotocols is None:
            subprotocols = [f"livehub.v1.{codec}"]
        headers = {"Origin": origin} if origin else None
        extra: dict[str, Any] = {} if source is None else {"local_addr": (source, 0)}
        ws = await websockets.connect(
            f"{base}/ws/{room}", subprotocols=subprotocols or None,  # type: ignore[arg-type]
            additional_headers=headers, max_size=2**22, open_timeout=10, compression=None,
            **extra,
        )
        return cls(ws, codec)

    @classmethod
    async def join(cls, base: str, room: str = ROOM, codec: str = "json",
                   source: str | None = None, **hello: Any) -> Client:
        client = await cls.connect(base, room, codec, source=source)
        await client.hello(**hello)
        return client

    def encode(self, frame: Any) -> bytes | str:
        if self.codec == "msgpack":
            data: bytes = msgpack.packb(frame, use_bin_type=True)
            return data
        return json.dumps(frame)

    async def send(self, frame: Any) -> None:
        await self.ws.send(self.encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def _read_frame(self, timeout: float) -> None:
        try:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        self.frames += 1
        if isinstance(data, bytes):
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(data)
            self.inbox.extend(unpacker)
        else:
            self.inbox.extend(json.loads(line) for line in data.split("\n") if line)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if not self.inbox:
            await self._read_frame(timeout)
        while not self.inbox:
            await self._read_frame(timeout)
        return self.inbox.popleft()

    async def recv_until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0
                         ) -> dict[str, Any]:
        """The first event matching ``pred``; those before it are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching event")
            ev = await self.recv(remaining)
            if pred(ev):
                return ev

    async def expect_close(self, timeout: float = 5.0) -> Closed:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.recv(max(0.01, deadline - time.monotonic()))
            except Closed as closed:
                return closed

    async def hello(self, **fields: Any) -> dict[str, Any]:
        await self.send({"t": "hello", **fields})
        ev = await self.recv()
        if ev.get("t") != "welcome":
            raise AssertionError(f"expected welcome, got {ev}")
        self.welcome = ev
        return ev

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send ``frame`` with a fresh id; its ``ok`` or ``error`` (other events stay queued)."""
        if "id" not in frame:
            self._ids += 1
            frame = {**frame, "id": f"r{self._ids}"}
        await self.send(frame)
        rid = frame["id"]
        kept: list[dict[str, Any]] = []
        try:
            while True:
                ev = await self.recv(timeout)
                if ev.get("t") in ("ok", "error") and ev.get("id") == rid:
                    return ev
                kept.append(ev)
        finally:
            self.inbox.extendleft(reversed(kept))

    def drain(self) -> list[dict[str, Any]]:
        out = list(self.inbox)
        self.inbox.clear()
        return out

    async def close(self) -> None:
        await self.ws.close()
