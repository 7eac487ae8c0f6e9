"""Fixtures for the cluster tests: a real Redis and several real ``livehub serve`` processes.

Tests that need Redis healthy share the one at ``LIVEHUB_TEST_REDIS_URL``
(default 127.0.0.1:6379) under a ``LIVEHUB_REDIS_NAMESPACE`` of their module's
own, whose keys are deleted afterwards, so runs never collide. Tests that kill,
restart, flush or reconfigure Redis get a private ``redis-server``.

:class:`Member` is a protocol client that remembers every sequenced event it
was given across reconnects (live, or replayed by a ``welcome`` with
``since``), so a test can check the whole stream each person saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import write_programme
from tests.redis_server import RedisServer
from tests.support import Client, Closed, LivehubProcess, token

REDIS_URL = os.environ.get("LIVEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOMS = 30

# Rate limit off (bursts are the point); votes coalesce over 0.2 s instead of 1 s.
BASE_ENV = {
    # The fan-out and failure tests send bursts as a few people and many guests from one
    # address: the fair limits have tests of their own (test_fair_limits.py).
    "LIVEHUB_RATE_LIMIT": "0",
    "LIVEHUB_GUEST_ADDRESS_RATE": "0",
    "LIVEHUB_GUEST_VOTES_PER_ADDRESS": "0",
    "LIVEHUB_VOTE_WINDOW": "0.2",
    "LIVEHUB_HELLO_TIMEOUT": "5",
    "LIVEHUB_SHUTDOWN_GRACE": "2",
}


# --- waiting -----------------------------------------------------------------------


async def eventually(pred: Callable[[], bool], timeout: float, what: str,
                     interval: float = 0.01) -> float:
    """Poll ``pred`` until true; the seconds it took. Fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not pred():
        if loop.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return loop.time() - started


async def eventually_async(pred: Callable[[], Awaitable[bool]], timeout: float, what: str,
                           interval: float = 0.02) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await pred():
        if loop.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return loop.time() - started


# --- processes ----------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (Linux /proc), for ``--workers`` runs."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


class Cluster:
    """Several ``livehub serve`` processes on one Redis (stopped by pid, never by name)."""

    def __init__(self, redis_url: str, namespace: str, programme: Path, log_dir: Path,
                 n: int = 2, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        env = {**BASE_ENV, "LIVEHUB_PROGRAMME": str(programme),
               "LIVEHUB_REDIS_NAMESPACE": namespace, **(env or {})}
        self.procs = [
            LivehubProcess(args=["--redis", redis_url, *(args or [])], env=env,
                           log_path=log_dir / f"livehub-{i}.log")
            for i in range(n)
        ]
        self.extra_pids: set[int] = set()  # worker processes of --workers runs

    def start(self) -> Cluster:
        with ThreadPoolExecutor(len(self.procs)) as pool:
            list(pool.map(lambda p: p.start(), self.procs))
        for p in self.procs:
            assert p.proc is not None
            self.extra_pids.update(_children(p.proc.pid))
        return self

    def pid(self, i: int) -> int:
        proc = self.procs[i].proc
        assert proc is not None
        return proc.pid

    def kill9(self, i: int) -> None:
        self.procs[i].kill()  # SIGKILL by pid, then reaped

    def alive(self, i: int) -> bool:
        proc = self.procs[i].proc
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        def one(p: LivehubProcess) -> None:
            try:
                p.terminate(timeout=10)
            except Exception:
                p.kill()
        with ThreadPoolExecutor(len(self.procs)) as pool:
            list(pool.map(one, self.procs))
        for pid in self.extra_pids:  # a worker left behind by a killed parent
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path}\n{p.log_text()[-4000:]}" for p in self.procs)


def delete_namespace(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
    finally:
        client.close()


@pytest.fixture(scope="session")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_programme(tmp_path_factory.mktemp("cluster") / "programme.toml", rooms=ROOMS)


@pytest.fixture(scope="module")
def shared_redis() -> str:
    """The shared Redis (skips when there is none)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest) -> str:
    """A Redis key namespace of this module's own."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"lhc-{module[:20]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster(shared_redis: str, namespace: str, programme: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two processes on the shared Redis, for this module's tests (one fresh room each)."""
    cl = Cluster(shared_redis, namespace, programme, tmp_path_factory.mktemp("logs"))
    try:
        yield cl.start()
    finally:
        cl.stop()
        delete_namespace(shared_redis, namespace)


@pytest.fixture
def make_cluster(namespace: str, programme: Path, tmp_path: Path
                 ) -> Iterator[Callable[..., Cluster]]:
    """Start clusters of this test's own (default: two processes on the shared Redis)."""
    made: list[Cluster] = []

    def make(redis_url: str = REDIS_URL, n: int = 2, env: dict[str, str] | None = None,
             args: list[str] | None = None) -> Cluster:
        log_dir = tmp_path / f"cluster-{len(made)}"
        log_dir.mkdir()
        cl = Cluster(redis_url, namespace, programme, log_dir, n=n, env=env, args=args)
        made.append(cl)
        return cl.start()

    try:
        yield make
    finally:
        for cl in made:
            cl.stop()
            if cl.redis_url == REDIS_URL:
                with contextlib.suppress(redis.RedisError):
                    delete_namespace(REDIS_URL, namespace)


@pytest.fixture
def private_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers; every one is killed and removed at teardown.

    Request it before ``make_cluster`` so the livehub processes stop first.
    """
    made: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            server.cleanup()


_rooms: dict[str, itertools.count[int]] = {}


@pytest.fixture
def fresh_room(namespace: str) -> Callable[[], str]:
    """The next room of the programme not yet used under this module's namespace."""
    counter = _rooms.setdefault(namespace, itertools.count())

    def make() -> str:
        n = next(counter)
        assert n < ROOMS, "raise ROOMS in tests/cluster/conftest.py"
        return f"room-{n:03d}"
    return make


# --- HTTP ---------------------------------------------------------------------------------


async def http_get(proc: LivehubProcess, path: str, timeout: float = 3.0) -> httpx.Response:
    async with httpx.AsyncClient(base_url=proc.url, timeout=timeout) as client:
        return await client.get(path)


async def online_in(proc: LivehubProcess, room: str) -> int:
    body = (await http_get(proc, "/api/rooms")).json()
    return int(next(r["online"] for r in body["rooms"] if r["id"] == room))


def channel(namespace: str, room: str) -> str:
    return f"{namespace}:{{{room}}}:ch"


def numsub(client: redis.Redis, namespace: str, room: str) -> int:
    [(_, n)] = client.pubsub_numsub(channel(namespace, room))
    return int(n)


# --- clients --------------------------------------------------------------------------------


class Member:
    """One person: a protocol client that keeps every sequenced event it saw.

    ``events`` is the person's stream across reconnects: live events, and those a
    ``welcome`` replayed after ``since``. ``answers`` maps request ids to their
    ``ok``/``error``. ``out_of_order`` collects any event at or below a seq already seen.
    """

    def __init__(self, room: str, sub: str, role: str = "participant") -> None:
        self.room = room
        self.sub = sub
        self.role = role
        self.token = token(role, sub.title(), sub=sub)
        self.client: Client | None = None
        self.epoch: str | None = None
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        self.out_of_order: list[dict[str, Any]] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self.welcomes: list[dict[str, Any]] = []
        self.presence: list[int] = []
        self._ids = itertools.count(1)

    async def join(self, proc: LivehubProcess, *, resume: bool = True) -> dict[str, Any]:
        """Connect to ``proc``; with ``resume``, send ``since`` and ``epoch`` when known."""
        hello: dict[str, Any] = {"token": self.token}
        if resume and self.epoch is not None:
            hello.update(since=self.seq, epoch=self.epoch)
        self.client = await Client.join(proc.ws_url, self.room, **hello)
        welcome = self.client.welcome
        self.welcomes.append(welcome)
        if welcome.get("recovered"):
            for ev in welcome["history"]:
                self._take(ev)
        self.seq = max(self.seq, welcome["seq"]) if welcome.get("recovered") else welcome["seq"]
        self.epoch = welcome["epoch"]
        return welcome

    def _take(self, ev: dict[str, Any]) -> None:
        t = ev.get("t")
        if t in ("ok", "error"):
            if ev.get("id") is not None:
                self.answers[ev["id"]] = ev
            return
        if t == "presence":
            self.presence.append(ev["online"])
            return
        if "seq" not in ev:
            return
        if ev["seq"] <= self.seq:
            self.out_of_order.append(ev)
        self.events.append(ev)
        self.seq = max(self.seq, ev["seq"])

    async def pump(self, until: Callable[[], bool], timeout: float, what: str = "") -> None:
        """Read frames until ``until()``; raises :class:`Closed` if the server closes."""
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.sub}: timed out after {timeout}s waiting for "
                                     f"{what or until} (seq {self.seq})")
            with contextlib.suppress(TimeoutError):
                self._take(await self.client.recv(min(remaining, 0.5)))

    async def catch_up(self, seq: int, timeout: float = 10.0) -> None:
        await self.pump(lambda: self.seq >= seq, timeout, f"seq {seq}")

    async def send(self, frame: dict[str, Any]) -> str:
        """Send a request with an id (a fresh one unless given); the id."""
        assert self.client is not None
        if "id" not in frame:
            frame = {**frame, "id": f"{self.sub}-{next(self._ids)}"}
        await self.client.send(frame)
        rid: str = frame["id"]
        return rid

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        rid = await self.send(frame)
        self.answers.pop(rid, None)  # a retry with the same id waits for its new answer
        await self.pump(lambda: rid in self.answers, timeout, f"answer to {rid}")
        return self.answers[rid]

    async def post(self, text: str, rid: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"t": "post", "text": text}
        if rid is not None:
            frame["id"] = rid
        return await self.request(frame)

    async def expect_close(self, timeout: float) -> Closed:
        """Read (keeping events) until the server closes the connection."""
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.sub}: not closed within {timeout}s")
            try:
                self._take(await self.client.recv(remaining))
            except Closed as closed:
                return closed
            except TimeoutError:
                continue

    def msgs(self) -> list[dict[str, Any]]:
        return [ev for ev in self.events if ev["t"] == "msg"]

    def seqs(self) -> list[int]:
        return [ev["seq"] for ev in self.events]

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


async def join_all(members: list[Member], procs: list[LivehubProcess]) -> None:
    """Join each member to the process at the same position (cycled)."""
    for member, proc in zip(members, itertools.cycle(procs), strict=False):
        await member.join(proc)


async def close_all(members: list[Member]) -> None:
    await asyncio.gather(*(m.close() for m in members))


def assert_same_gap_free_stream(members: list[Member], first: int, last: int) -> None:
    """Everyone saw every seq from ``first`` to ``last`` once, in order, with the same event."""
    want = list(range(first, last + 1))
    reference: dict[int, Any] = {}
    for m in members:
        assert not m.out_of_order, f"{m.sub}: duplicate or out-of-order {m.out_of_order[:3]}"
        seqs = [s for s in m.seqs() if first <= s <= last]
        assert seqs == want, (f"{m.sub}: gap or duplicate; missing "
                              f"{sorted(set(want) - set(seqs))[:10]}, extra "
                              f"{[s for s in seqs if seqs.count(s) > 1][:10]}")
        for ev in m.events:
            key = (ev["t"], ev.get("mid"), ev.get("qid"))
            assert reference.setdefault(ev["seq"], key) == key, f"{m.sub}: seq {ev['seq']} differs"
