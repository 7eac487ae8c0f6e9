"""The pages around the room: the programme, sign-in, 404s and security headers."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import PageLog
from tests.support import LivehubProcess, token

PAGES = ["/", "/room/chat", "/static/js/room.js", "/static/css/livehub.css", "/room/no-such-room"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_and_static_files_carry_a_strict_policy(site: LivehubProcess, path: str) -> None:
    r = httpx.get(site.url + path, headers={"Host": f"127.0.0.1:{site.port}"})
    assert r.status_code == (404 if "no-such" in path else 200)
    policy = r.headers["content-security-policy"]
    csp = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == (f"'self' ws://127.0.0.1:{site.port} "
                                  f"wss://127.0.0.1:{site.port}")
    assert csp["img-src"] == "'self' data:"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["base-uri"] == "'none'"
    assert csp["form-action"] == "'self'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    if path.endswith(".js"):
        assert r.headers["content-type"].startswith("text/javascript")
    if not path.startswith("/static"):
        # No inline script or style anywhere: the policy would block it anyway.
        assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None
        assert "<style" not in r.text and "style=" not in r.text
        assert '<html lang="en">' in r.text


def test_a_strange_host_header_stays_out_of_the_policy(site: LivehubProcess) -> None:
    r = httpx.get(site.url + "/", headers={"Host": "evil.example; script-src *"})
    assert "evil" not in r.headers["content-security-policy"]


def test_api_responses_are_left_alone(site: LivehubProcess) -> None:
    r = httpx.get(site.url + "/api/rooms")
    assert "content-security-policy" not in r.headers


def test_programme_by_day_with_live_counts(browser: Any, open_room: OpenRoom,
                                            site: LivehubProcess) -> None:
    context = browser.new_context()
    page = context.new_page()
    log = PageLog()
    log.watch(page)
    page.clock.install()
    page.goto(site.url + "/")
    days = page.get_by_role("heading", level=2)
    expect(days).to_have_text(["Monday, 6 April 2009", "Tuesday, 7 April 2009", "Other sessions"])
    chat = page.locator(".session").filter(has=page.get_by_role("link", name="Open chat"))
    expect(chat).to_contain_text("10:00 to 11:00")  # 09:00Z is 10:00 in London in April
    expect(chat).to_contain_text("With Cllr Test Speaker; Dr <b>Not Bold</b>")
    expect(chat.locator(".badge--open")).to_have_text("Open")
    expect(page.get_by_role("link", name="Open chat")).to_have_attribute("href", "/room/chat")
    qa = page.locator(".session").filter(
        has=page.get_by_role("link", name="Questions to the panel"))
    expect(qa).to_contain_text("0 people online")

    # Two people join; the count updates at the next refresh, without a reload.
    open_room("qa", guest="Ann")
    open_room("qa", guest="Bob")
    page.clock.run_for(16_000)
    expect(qa).to_contain_text("2 people online")
    page.get_by_role("link", name="Questions to the panel").click()
    expect(page).to_have_url(re.compile(r"/room/qa$"))
    context.close()
    assert log.errors == [] and log.csp_violations() == []


def test_unknown_room_is_a_404_page(browser: Any, site: LivehubProcess) -> None:
    page = browser.new_page()
    response = page.goto(site.url + "/room/no-such-session")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Session not found")
    expect(page.get_by_role("link", name="See the programme")).to_be_visible()
    page.close()


def test_token_link_leaves_the_address_bar_and_survives_a_reload(
        open_room: OpenRoom, site: LivehubProcess) -> None:
    secret = token("speaker", "Cllr Token Holder")
    ann = open_room("chat", token=secret)
    page = ann.page
    assert page.url == f"{site.url}/room/chat"  # the fragment is gone
    assert page.evaluate("sessionStorage.getItem('livehub.token.chat')") == secret
    expect(page.locator("#me")).to_have_text("You are Cllr Token Holder, speaker.")
    page.reload()
    expect(page.locator("#me")).to_have_text("You are Cllr Token Holder, speaker.")
    # Another room of the same conference keeps the sign-in too.
    page.goto(site.url + "/room/qa")
    expect(page.locator("#me")).to_have_text("You are Cllr Token Holder, speaker.")
    # The token only ever travelled in the hello frame, never in a URL the server saw.
    assert secret not in site.log_text()


def test_members_room_asks_for_a_sign_in_link(browser: Any, site: LivehubProcess) -> None:
    page = browser.new_page()
    page.goto(site.url + "/room/members")
    expect(page.get_by_role("heading", name="Sign-in needed")).to_be_visible()
    expect(page.get_by_label("Your name")).to_be_hidden()
    page.goto(site.url + "/room/members#token=" + token("participant", "Cllr Member"))
    expect(page.locator("#me")).to_have_text("You are Cllr Member, participant.")
    page.close()


def test_a_refused_token_offers_guest_entry_with_the_reason(browser: Any,
                                                             site: LivehubProcess) -> None:
    page = browser.new_page()
    forged = token("moderator", "Bad", secret="a-different-secret-of-a-decent-length")
    page.goto(site.url + "/room/chat#token=" + forged)
    expect(page.locator("#guest-name-error")).to_contain_text("sign-in link was not accepted")
    page.get_by_label("Your name").fill("Ann")
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#me")).to_have_text("You are Ann (guest), participant.")
    page.close()


def test_guest_name_is_checked_before_joining(browser: Any, site: LivehubProcess) -> None:
    page = browser.new_page()
    page.goto(site.url + "/room/chat")
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#guest-name-error")).to_have_text("Enter your name to join.")
    expect(page.get_by_label("Your name")).to_be_focused()
    expect(page.get_by_label("Your name")).to_have_attribute("aria-invalid", "true")
    page.close()
