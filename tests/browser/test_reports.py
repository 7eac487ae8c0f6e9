"""Reports, held posts and reactions in a real browser, by keyboard, with axe."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import axe_source, axe_violations, wire
from tests.support import LivehubProcess, token

pytest.importorskip("axe_playwright_python", reason="axe-core comes from axe-playwright-python")


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def no_axe_violations(page: Page, axe: str) -> None:
    violations = axe_violations(page, axe)
    assert violations == [], "\n".join(violations)


def test_a_participant_reports_and_a_moderator_resolves(open_room: OpenRoom,
                                                        site: LivehubProcess, axe: str) -> None:
    ann = open_room("reports", guest="Ann")
    mod = open_room("reports", token=token("moderator", "Cllr Mod", sub="rep-mod"))
    with wire(site.ws_url, "reports", name="Troll") as troll:
        troll.request({"t": "post", "text": "Something rude"})
    post = ann.post("Something rude")
    expect(post).to_be_visible()
    # By keyboard: focus Report, open the dialog, choose a reason, write a note, send.
    report = ann.button(re.compile(r"^Report"), post)
    report.focus()
    ann.page.keyboard.press("Enter")
    dialog = ann.page.get_by_role("dialog", name="Report to the moderators")
    expect(dialog).to_be_visible()
    no_axe_violations(ann.page, axe)
    dialog.get_by_label("Spam").check()
    dialog.get_by_label("Note (optional)").fill("Third time today")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog).to_be_hidden()
    expect(ann.page.locator("#report-status")).to_have_text(
        "Thank you. The moderators have your report.")

    reports = mod.page.locator("#reports-list")
    item = reports.locator("li").filter(has_text="reported by Ann")
    expect(item).to_contain_text("Spam")
    expect(item).to_contain_text("Note: Third time today")
    expect(mod.page.locator("#reports-count")).to_have_text("1")
    no_axe_violations(mod.page, axe)
    # Nobody but moderators sees the reports list.
    expect(ann.page.locator("#moderation")).to_be_hidden()
    mod.button(re.compile(r"^Resolve"), item).click()
    expect(reports.locator("li")).to_have_count(0)
    expect(mod.page.locator("#reports-empty")).to_be_visible()


def test_a_moderator_releases_and_deletes_held_posts(open_room: OpenRoom) -> None:
    ann = open_room("reports", guest="Held Ann")
    bob = open_room("reports", guest="Bob")
    mod = open_room("reports", token=token("moderator", "Cllr Mod", sub="held-mod"))
    ann.send("what gumphery is this")
    expect(ann.page.locator("#message-status")).to_have_text(
        "Your message is waiting for a moderator to approve it.")
    ann.send("more gumphery to reject")
    held = mod.page.locator("#held-list li")
    expect(held).to_have_count(2)
    expect(bob.page.get_by_text("what gumphery is this", exact=True)).to_have_count(0)
    first = held.filter(has_text="what gumphery is this")
    release = mod.button(re.compile(r"^Release"), first)
    release.focus()
    mod.page.keyboard.press("Enter")
    expect(bob.post("what gumphery is this")).to_be_visible()
    expect(ann.post("what gumphery is this")).to_be_visible()
    mod.button(re.compile(r"^Delete"), held.filter(has_text="more gumphery")).click()
    expect(held).to_have_count(0)
    expect(mod.page.locator("#held-empty")).to_be_visible()
    expect(bob.page.get_by_text("more gumphery to reject", exact=True)).to_have_count(0)


def test_a_reaction_button_says_what_and_how_many(open_room: OpenRoom, site: LivehubProcess,
                                                  axe: str) -> None:
    ann = open_room("reactions", guest="Ann")
    bob = open_room("reactions", guest="Bob")
    with wire(site.ws_url, "reactions", name="Poster") as poster:
        mid = poster.request({"t": "post", "text": "React to this"})["mid"]
        with wire(site.ws_url, "reactions", name="Fan") as fan:
            fan.request({"t": "react", "mid": mid, "emoji": "thumbs_up"})
    post = ann.post("React to this")
    expect(ann.button("Thumbs up, 1", post)).to_be_visible()
    thumbs = ann.button("Thumbs up, 1", post)
    thumbs.focus()
    ann.page.keyboard.press("Enter")
    expect(ann.button("Thumbs up, 2", post)).to_have_attribute("aria-pressed", "true")
    expect(bob.button("Thumbs up, 2", bob.post("React to this"))).to_be_visible()
    expect(bob.button("Heart, 0", bob.post("React to this"))).to_be_visible()
    # Pressed again, it is taken back.
    ann.button("Thumbs up, 2", post).click()
    expect(bob.button("Thumbs up, 1", bob.post("React to this"))).to_be_visible()
    no_axe_violations(ann.page, axe)
