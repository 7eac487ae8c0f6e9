"""Shared fixtures: a real livehub server process for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support import LivehubProcess

# Browser assertions wait up to 15 s (Playwright's default is 5): CI shares two cores
# with real servers, and a page that is right late is still right.
expect.set_options(timeout=15_000)

TEST_PROGRAMME = str(Path(__file__).parent / "data" / "programme.toml")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    """One in-memory livehub process for the tests that only need a server."""
    log = tmp_path_factory.mktemp("server") / "livehub.log"
    proc = LivehubProcess(
        env={"LIVEHUB_PROGRAMME": TEST_PROGRAMME, "LIVEHUB_HELLO_TIMEOUT": "1",
             "LIVEHUB_VOTE_WINDOW": "0.2"},
        log_path=log,
    ).start()
    yield proc
    proc.terminate()
