"""In Chromium: "Sign in" on a room page, through the provider's login form, and back in
the room as a moderator; the pages on the way pass axe (WCAG 2.1 A and AA)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser.helpers import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    PageLog,
    axe_source,
    axe_violations,
)
from tests.signin.flow import TestProvider
from tests.support import LivehubProcess

pytest.importorskip("axe_playwright_python", reason="axe-core comes from axe-playwright-python")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def check_axe(page: Any) -> None:
    violations = axe_violations(page, axe_source())
    assert violations == [], "\n".join(violations)


def test_sign_in_from_the_room_page_as_moderator(browser: Any, livehub: LivehubProcess,
                                                provider: TestProvider) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log = PageLog()
    log.watch(page)
    try:
        page.goto(f"{livehub.url}/room/board")  # a room that admits no guests
        expect(page.get_by_role("heading", name="Sign-in needed")).to_be_visible()
        sign_in = page.get_by_role("link", name="Sign in", exact=True)
        expect(sign_in).to_be_visible()
        assert sign_in.get_attribute("href") == "/auth/login?next=/room/board"
        check_axe(page)

        sign_in.click()
        expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/authorize"))
        page.get_by_label("Email", exact=True).fill("comms@eastmere.gov.uk")
        page.get_by_label("Full name").fill("Cllr Jo Bloggs")
        page.get_by_role("button", name="Sign in").click()

        # Provider, callback and room page in turn: allow a loaded machine its time.
        expect(page.locator("#room")).to_be_visible(timeout=30_000)
        assert page.url == f"{livehub.url}/room/board"  # the token left the address bar
        expect(page.locator("#me")).to_contain_text("Cllr Jo Bloggs")
        expect(page.get_by_role("heading", name="Room controls")).to_be_visible()
        expect(page.get_by_role("button", name="Close the room")).to_be_visible()
        expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_hidden()
        check_axe(page)

        # A reload keeps the sign-in (the token stays in this tab's sessionStorage).
        page.reload()
        expect(page.get_by_role("heading", name="Room controls")).to_be_visible()
    finally:
        context.close()
    assert log.errors == [] and log.dialogs == [] and log.csp_violations() == []


def test_a_cancelled_sign_in_is_a_plain_page_with_a_way_back(
        browser: Any, livehub: LivehubProcess, provider: TestProvider) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(f"{livehub.url}/room/forum")  # admits guests: the name form and Sign in
        expect(page.get_by_label("Your name")).to_be_visible()
        page.get_by_role("link", name="Sign in", exact=True).click()
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_role("heading", name="Sign-in was cancelled")).to_be_visible()
        assert "#token=" not in page.url
        check_axe(page)
        page.get_by_role("link", name="Try signing in again").click()
        expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/authorize"))
    finally:
        context.close()
