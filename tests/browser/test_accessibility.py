"""axe-core finds no WCAG 2.1 A or AA violation on the pages, in every role's view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import PHONE, axe_source, axe_violations, wire
from tests.support import LivehubProcess, token

pytest.importorskip("axe_playwright_python", reason="axe-core comes from axe-playwright-python")

ROOM = "a11y"


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


@pytest.fixture(scope="module")
def room_in_use(site: LivehubProcess) -> Iterator[dict[str, str]]:
    """A room with posts, a reply, a pin, ranked questions, one on stage with an
    answer, and (after pre-moderation is switched on) one awaiting approval."""
    mod_token = token("moderator", "Cllr Moderator", sub="a11y-mod")
    with wire(site.ws_url, ROOM, token=mod_token) as mod, \
            wire(site.ws_url, ROOM, name="Resident Ann") as ann:
        welcome = mod.request({"t": "post",
                               "text": "Welcome: the agenda is on the council website."})
        mod.request({"t": "pin", "mid": welcome["mid"]})
        first = ann.request({"t": "post", "text": "Will the slides be shared?"})
        mod.request({"t": "post", "text": "Yes, after the session.", "reply_to": first["mid"]})
        q1 = ann.request({"t": "ask", "text": "How will residents be consulted on the budget?"})
        ann.request({"t": "ask", "text": "Can meetings be held in the evening?", "anonymous": True})
        mod.request({"t": "vote", "qid": q1["qid"], "up": True})
        q3 = mod.request({"t": "ask", "text": "What does the transport plan mean for rural wards?"})
        mod.request({"t": "qstate", "qid": q3["qid"], "state": "answering"})
        mod.request({"t": "answer", "qid": q3["qid"], "text": "More buses on market days."})
        mod.request({"t": "settings", "premoderate": True})
        ann.request({"t": "ask", "text": "Is this question awaiting approval?"})
        mod.request({"t": "mute", "uid": ann.welcome["me"]["uid"], "seconds": 300})
        yield {"moderator": mod_token}


def check(page: Page, axe: str) -> None:
    violations = axe_violations(page, axe)
    assert violations == [], "\n".join(violations)


def test_programme_page(browser: Any, site: LivehubProcess, axe: str) -> None:
    page = browser.new_page()
    page.goto(site.url + "/")
    expect(page.locator(".session").first).to_be_visible()
    check(page, axe)
    page.close()


def test_guest_join_form(browser: Any, site: LivehubProcess, axe: str) -> None:
    page = browser.new_page()
    page.goto(f"{site.url}/room/{ROOM}")
    page.get_by_role("button", name="Join").click()  # with its error showing
    expect(page.locator("#guest-name-error")).not_to_be_empty()
    check(page, axe)
    page.close()


def test_participant_view(open_room: OpenRoom, room_in_use: dict[str, str], axe: str,
                          site: LivehubProcess) -> None:
    me = open_room(ROOM, token=token("participant", "Cllr Pat", sub="a11y-pat"))
    expect(me.stage).to_contain_text("More buses on market days.")
    me.button("Vote", me.question("Can meetings be held in the evening?")).click()
    me.button("Reply", me.post("Will the slides be shared?")).click()
    me.send("")  # the error line shows next to the box
    with wire(site.ws_url, ROOM, token=room_in_use["moderator"]) as mod:
        mod.request({"t": "mute", "uid": "a11y-pat", "seconds": 300})
    expect(me.page.locator("#mute-notice")).to_be_visible()
    check(me.page, axe)


def test_participant_view_on_a_phone(open_room: OpenRoom, room_in_use: dict[str, str],
                                     axe: str) -> None:
    me = open_room(ROOM, guest="Phone Reader", viewport=PHONE)
    expect(me.stage).to_contain_text("More buses on market days.")
    check(me.page, axe)


def test_speaker_view(open_room: OpenRoom, room_in_use: dict[str, str], axe: str) -> None:
    me = open_room(ROOM, token=token("speaker", "Dr Speaker"))
    expect(me.page.locator("#pending")).to_be_visible()
    me.stage.get_by_text("Answer in text").click()
    check(me.page, axe)


def test_moderator_view(open_room: OpenRoom, room_in_use: dict[str, str], axe: str) -> None:
    me = open_room(ROOM, token=room_in_use["moderator"])
    expect(me.page.locator("#controls")).to_be_visible()
    expect(me.page.locator("#pending")).to_be_visible()
    post = me.post("Will the slides be shared?")
    post.get_by_role("button", name="Actions").click()
    expect(post.get_by_role("menu")).to_be_visible()
    check(me.page, axe)
    # And with the ban confirmation open.
    post.get_by_role("menuitem", name="Ban Resident Ann").click()
    expect(me.page.get_by_role("dialog")).to_be_visible()
    check(me.page, axe)
    me.page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
