"""Fixtures for the operations tests: a server of their own, and ways to read it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TEST_PROGRAMME
from tests.support import LivehubProcess


@pytest.fixture(scope="package")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    """One in-memory server for the ops tests (rooms: lobby, lobby-2, premod, members, slow).

    Each test module keeps to its own rooms, so counts and logs stay exact.
    """
    log = tmp_path_factory.mktemp("ops") / "livehub.log"
    proc = LivehubProcess(
        env={"LIVEHUB_PROGRAMME": TEST_PROGRAMME, "LIVEHUB_VOTE_WINDOW": "0.1",
             "LIVEHUB_PRESENCE_INTERVAL": "0.2"},
        log_path=log,
    ).start()
    yield proc
    proc.terminate()
