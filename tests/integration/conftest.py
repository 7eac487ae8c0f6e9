"""Fixtures for the integration tests: a server with a fresh room per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import LivehubProcess

ROOMS = 200


def write_programme(path: Path, rooms: int = ROOMS, **settings: object) -> Path:
    """A programme of ``rooms`` plain rooms named room-000, room-001, ..."""
    extra = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                    for k, v in settings.items())
    body = ['[conference]\ntitle = "Many rooms"\n']
    for i in range(rooms):
        body.append(f'\n[[session]]\nslug = "room-{i:03d}"\ntitle = "Room {i}"\n{extra}')
    path.write_text("".join(body))
    return path


@pytest.fixture(scope="module")
def rooms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    """A server whose rooms are handed out one per test, so tests never share state."""
    tmp = tmp_path_factory.mktemp("rooms")
    proc = LivehubProcess(
        env={"LIVEHUB_PROGRAMME": str(write_programme(tmp / "programme.toml"))},
        log_path=tmp / "livehub.log",
    ).start()
    yield proc
    proc.terminate()


_used: dict[int, itertools.count[int]] = {}


@pytest.fixture
def fresh_room(rooms_server: LivehubProcess) -> Callable[[], str]:
    """Hands out the next unused room of ``rooms_server``."""
    counter = _used.setdefault(id(rooms_server), itertools.count())

    def make() -> str:
        n = next(counter)
        assert n < ROOMS, "raise ROOMS in tests/integration/conftest.py"
        return f"room-{n:03d}"
    return make
