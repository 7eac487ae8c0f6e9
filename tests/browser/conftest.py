"""Browser fixtures: Debian's Chromium driven by Playwright, against a real livehub.

The browser and the server live as long as this package's tests (one launch,
one server); every page gets its own browser context, so sessionStorage and
sign-ins never leak from one page to another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.helpers import CHROMIUM, LAUNCH_ARGS, PROGRAMME, RoomPage, new_room_page
from tests.support import LivehubProcess

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without Chromium (CI installs Debian's) the browser tests are skipped, and say why."""
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    log = tmp_path_factory.mktemp("browser-server") / "livehub.log"
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(PROGRAMME),
                               "LIVEHUB_VOTE_WINDOW": "0.1"}, log_path=log).start()
    yield proc
    proc.terminate()


OpenRoom = Callable[..., RoomPage]


@pytest.fixture
def open_room(browser: Any, site: LivehubProcess) -> Iterator[OpenRoom]:
    """``open_room(room, token=..., guest=..., viewport=...)``: a signed-in room page.

    At the end every page must have run without a script error, a dialog
    (nothing may call alert) or a Content-Security-Policy violation.
    """
    pages: list[RoomPage] = []

    def open_(room: str, **kwargs: Any) -> RoomPage:
        page = new_room_page(browser, kwargs.pop("base", site.url), room, **kwargs)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.page.context.close()
    for page in pages:
        assert page.log.errors == [], page.log.errors
        assert page.log.dialogs == [], page.log.dialogs
        assert page.log.csp_violations() == []
