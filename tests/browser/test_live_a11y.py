"""Keyboard-only moderation through the "Actions" menu, and axe on the new pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import PHONE, axe_source, axe_violations, wire
from tests.support import LivehubProcess, token

pytest.importorskip("axe_playwright_python", reason="axe-core comes from axe-playwright-python")

ROOM = "live-a11y"


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def check(page: Page, axe: str) -> None:
    violations = axe_violations(page, axe)
    assert violations == [], "\n".join(violations)


def test_a_moderator_mutes_through_the_actions_menu_by_keyboard_alone(
        open_room: OpenRoom) -> None:
    ann = open_room("actions-menu", guest="Ann")
    mod = open_room("actions-menu", token=token("moderator", "Cllr Mod", sub="menu-mod"))
    ann.send("Too many capitals here")
    post = mod.post("Too many capitals here")
    expect(post).to_be_visible()
    page = mod.page
    menu_button = post.get_by_role("button", name="Actions")
    expect(menu_button).to_have_attribute("aria-haspopup", "menu")
    expect(menu_button).to_have_attribute("aria-expanded", "false")
    # Tab to the button from the Reply button before it, as a keyboard user would.
    post.get_by_role("button", name="Reply").focus()
    page.keyboard.press("Tab")
    expect(menu_button).to_be_focused()
    page.keyboard.press("Enter")
    expect(menu_button).to_have_attribute("aria-expanded", "true")
    items = post.get_by_role("menuitem")
    expect(items.first).to_be_focused()
    expect(items.first).to_have_accessible_name("Pin post by Ann")
    # Escape closes it and returns to the button; Down opens it again.
    page.keyboard.press("Escape")
    expect(post.get_by_role("menu")).to_be_hidden()
    expect(menu_button).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.first).to_be_focused()
    page.keyboard.press("End")
    expect(post.get_by_role("menuitem", name="Unmute Ann")).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(post.get_by_role("menuitem", name="Mute Ann for 5 minutes")).to_be_focused()
    page.keyboard.press("Enter")
    expect(ann.page.locator("#mute-notice")).to_contain_text("You are muted until")
    expect(page.locator("#muted-list")).to_contain_text("Ann")
    # Unmute from the room controls, by keyboard too.
    unmute = page.locator("#muted-list").get_by_role("button", name="Unmute Ann")
    unmute.focus()
    page.keyboard.press("Enter")
    expect(ann.page.locator("#mute-notice")).to_be_hidden()
    # Participants and speakers see no Actions menu.
    expect(ann.page.get_by_role("button", name="Actions")).to_have_count(0)


@pytest.fixture(scope="module")
def live_room(site: LivehubProcess) -> Iterator[dict[str, str]]:
    """A room with a question on stage and answered, a queue, and an open poll voted on."""
    mod_token = token("moderator", "Cllr Moderator", sub="live-a11y-mod")
    with wire(site.ws_url, ROOM, token=mod_token) as mod, \
            wire(site.ws_url, ROOM, name="Resident Ann") as ann:
        q = ann.request({"t": "ask", "text": "Will the library stay open on Saturdays?"})
        ann.request({"t": "ask", "text": "Can the bins go out later?"})
        ann.request({"t": "post", "text": "Thanks for taking questions."})
        mod.request({"t": "qstate", "qid": q["qid"], "state": "answering"})
        mod.request({"t": "answer", "qid": q["qid"], "text": "Yes, until the end of March."})
        pid = mod.request({"t": "poll", "question": "Which improvement first?",
                           "options": ["Longer hours", "More staff", "Better Wi-Fi"],
                           "multi": True})["pid"]
        ann.request({"t": "ballot", "pid": pid, "choices": [0, 2]})
        yield {"moderator": mod_token}


@pytest.mark.parametrize("path", ["/present/live-a11y", "/embed/live-a11y"])
def test_live_views(browser: Any, site: LivehubProcess, live_room: dict[str, str], axe: str,
                    path: str) -> None:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(site.url + path)
    expect(page.locator(".poll__fill")).to_have_count(3)
    expect(page.locator(".live__answer-text")).to_be_visible()
    check(page, axe)
    page.set_viewport_size({"width": 320, "height": 640})
    check(page, axe)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.close()


def test_room_with_polls_for_each_role(open_room: OpenRoom, live_room: dict[str, str],
                                       axe: str) -> None:
    participant = open_room(ROOM, guest="Bob", viewport=PHONE)
    expect(participant.page.get_by_role("button", name="Send vote")).to_be_visible()
    check(participant.page, axe)
    mod = open_room(ROOM, token=live_room["moderator"])
    expect(mod.page.get_by_role("button", name="Open poll")).to_be_visible()
    expect(mod.page.get_by_role("link", name="Presentation view")).to_be_visible()
    expect(mod.page.get_by_role("button", name="Close poll “Which improvement first?”")
           ).to_be_visible()
    check(mod.page, axe)


def test_record_page(browser: Any, site: LivehubProcess, axe: str) -> None:
    with wire(site.ws_url, "record-a11y", token=token("moderator", "Chair", sub="rec-a11y")
              ) as mod, wire(site.ws_url, "record-a11y", name="Ann") as ann:
        ann.request({"t": "post", "text": "Thank you all."})
        q = ann.request({"t": "ask", "text": "Will there be minutes?", "anonymous": True})
        mod.request({"t": "answer", "qid": q["qid"], "text": "Yes, next week."})
        pid = mod.request({"t": "poll", "question": "Useful?", "options": ["Yes", "No"]})["pid"]
        ann.request({"t": "ballot", "pid": pid, "choices": [0]})
        mod.request({"t": "settings", "state": "closed"})
    page = browser.new_page()
    page.goto(site.url + "/record/record-a11y")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    check(page, axe)
    page.close()
