"""Servers for the reports, watched words and reactions tests.

Every test runs twice: against one process (memory broker) and against two
processes over the shared Redis, its clients spread over both (``net.proc(i)``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cluster.conftest import REDIS_URL, Cluster, delete_namespace
from tests.support import Client, LivehubProcess, token

ROOMS = 80
ENV = {"LIVEHUB_RATE_LIMIT": "0", "LIVEHUB_VOTE_WINDOW": "0.3", "LIVEHUB_HELLO_TIMEOUT": "5"}

PROGRAMME_HEAD = '''[conference]
title = "Watched"

[watched_words]
block = ["klonkwit", "grimbo*"]
hold = ["gumphery", "vile lies"]

[[session]]
slug = "own-lists"
title = "Own lists"
watched_words = { block = ["parsnipgate"], hold = ["turnipgate"] }
'''


def write_programme(path: Path) -> Path:
    body = [PROGRAMME_HEAD]
    body += [f'\n[[session]]\nslug = "room-{i:03d}"\ntitle = "Room {i}"\n' for i in range(ROOMS)]
    path.write_text("".join(body))
    return path


@dataclass
class Net:
    """The processes of one test: clients join ``proc(i)`` (cycled over them)."""

    procs: list[LivehubProcess]
    rooms: Iterator[str]

    def proc(self, i: int) -> LivehubProcess:
        return self.procs[i % len(self.procs)]

    def room(self) -> str:
        return next(self.rooms)

    async def join(self, i: int, room: str, role: str = "participant", sub: str | None = None,
                   **hello: Any) -> Client:
        if "name" not in hello:
            hello["token"] = token(role, f"The {sub or role}", sub=sub or f"{role}-{i}")
        return await Client.join(self.proc(i).ws_url, room, **hello)


@pytest.fixture(scope="module")
def programme_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_programme(tmp_path_factory.mktemp("watched") / "programme.toml")


@pytest.fixture(scope="module")
def one_process(programme_file: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[LivehubProcess]:
    proc = LivehubProcess(env={**ENV, "LIVEHUB_PROGRAMME": str(programme_file)},
                          log_path=tmp_path_factory.mktemp("one") / "livehub.log").start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def two_processes(programme_file: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[list[LivehubProcess]]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()
    namespace = f"lhr-{uuid.uuid4().hex[:8]}"
    cl = Cluster(REDIS_URL, namespace, programme_file, tmp_path_factory.mktemp("two"),
                 env=ENV)
    try:
        yield cl.start().procs
    finally:
        cl.stop()
        delete_namespace(REDIS_URL, namespace)


_counters: dict[str, itertools.count[int]] = {}


@pytest.fixture(params=["one", "two"])
def net(request: pytest.FixtureRequest) -> Net:
    mode = request.param
    procs = ([request.getfixturevalue("one_process")] if mode == "one"
             else request.getfixturevalue("two_processes"))
    counter = _counters.setdefault(f"{request.module.__name__}:{mode}", itertools.count())

    def rooms() -> Iterator[str]:
        while True:
            n = next(counter)
            assert n < ROOMS, "raise ROOMS in tests/reports/conftest.py"
            yield f"room-{n:03d}"
    return Net(procs, rooms())


Sentinel = Callable[[], Any]
