"""Polls in the room, the presentation view, the embed and the record, in Chromium."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from livehub.auth import mint
from livehub.roles import Role
from tests.browser.conftest import OpenRoom
from tests.browser.helpers import DESKTOP, PROGRAMME, PageLog, wire
from tests.support import SECRET, LivehubProcess, token


def open_page(browser: Any, url: str, viewport: dict[str, int] | None = None
              ) -> tuple[Page, PageLog]:
    context = browser.new_context(viewport=viewport or DESKTOP)
    page = context.new_page()
    log = PageLog()
    log.watch(page)
    page.goto(url)
    return page, log


def clean(log: PageLog) -> None:
    assert log.errors == [] and log.dialogs == [] and log.csp_violations() == []


def test_a_speaker_opens_a_poll_and_closes_it_while_three_participants_vote(
        open_room: OpenRoom) -> None:
    speaker = open_room("polls", token=token("speaker", "Cllr Jo", sub="poll-speaker"))
    voters = [open_room("polls", guest=name) for name in ("Ann", "Bob", "Cat")]
    page = speaker.page
    page.get_by_label("Poll question").fill("Which day suits the next forum?")
    page.get_by_label("Option 1").fill("Monday")
    page.get_by_label("Option 2").fill("Tuesday")
    page.get_by_role("button", name="Add option").click()
    expect(page.get_by_label("Option 3")).to_be_focused()
    page.get_by_label("Option 3").fill("Wednesday")
    page.get_by_role("button", name="Open poll").click()
    poll = page.locator(".poll").first
    expect(poll).to_contain_text("Which day suits the next forum?")
    for voter, choice in zip(voters, ("Monday", "Tuesday", "Tuesday"), strict=True):
        voter.page.get_by_role("radio", name=choice).check()
        voter.page.get_by_role("button", name="Send vote").click()
        expect(voter.page.locator(".poll__ballot .hint")).to_contain_text("Your vote is counted")
    expect(poll.locator(".poll__option").nth(1)).to_contain_text("2 votes (67%)")
    expect(poll.locator(".poll__option").nth(0)).to_contain_text("1 vote (33%)")
    # A voter changes their mind: replaced, not added.
    voters[0].page.get_by_role("radio", name="Wednesday").check()
    voters[0].page.get_by_role("button", name="Send vote").click()
    expect(poll.locator(".poll__option").nth(2)).to_contain_text("1 vote (33%)")
    expect(poll.locator(".poll__option").nth(0)).to_contain_text("0 votes (0%)")
    page.get_by_role("button", name="Close poll").click()
    for voter in voters:
        expect(voter.page.locator(".poll")).to_contain_text("Closed: these are the final results.")
        expect(voter.page.get_by_role("button", name="Send vote")).to_have_count(0)
    expect(page.get_by_role("button", name="Reopen poll")).to_be_visible()


def test_the_presentation_view_shows_the_stage_and_live_poll_bars(
        browser: Any, site: LivehubProcess) -> None:
    page, log = open_page(browser, f"{site.url}/present/present", {"width": 1920, "height": 1080})
    expect(page.locator("#live-status")).to_have_text("Live.")
    expect(page.get_by_role("button")).to_have_count(0)  # no controls at all
    with wire(site.ws_url, "present", token=token("moderator", "Chair", sub="pres-mod")) as mod, \
            wire(site.ws_url, "present", name="Resident Ann") as ann:
        qid = ann.request({"t": "ask", "text": "When will the bus route return?"})["qid"]
        ann.request({"t": "ask", "text": "Second question in the queue"})
        mod.request({"t": "qstate", "qid": qid, "state": "answering"})
        stage = page.locator(".live__stage-text")
        expect(stage).to_have_text("When will the bus route return?")
        mod.request({"t": "answer", "qid": qid, "text": "In the spring timetable."})
        expect(page.locator(".live__answer-text")).to_have_text("In the spring timetable.")
        expect(page.locator(".live__question-text")).to_have_text("Second question in the queue")
        # The question on stage is the largest text on the screen.
        sizes = page.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.childElementCount === 0 && e.textContent.trim())
            .map(e => [parseFloat(getComputedStyle(e).fontSize),
                       e.closest('.live__stage-text') !== null])""")
        biggest = max(s for s, _ in sizes)
        assert all(on_stage for s, on_stage in sizes if s == biggest)
        pid = mod.request({"t": "poll", "question": "Bus or tram?",
                           "options": ["Bus", "Tram"]})["pid"]
        fills = page.locator(".poll__fill")
        expect(fills).to_have_count(2)
        ann.request({"t": "ballot", "pid": pid, "choices": [1]})
        expect(page.locator(".poll__option").nth(1)).to_contain_text("1 vote (100%)")
        width = page.evaluate("() => document.querySelectorAll('.poll__fill')[1].style.width")
        assert width == "100%"
        mod.request({"t": "ballot", "pid": pid, "choices": [0]})
        expect(page.locator(".poll__option").nth(0)).to_contain_text("1 vote (50%)")
        # Watchers are not counted online.
        assert mod.welcome["online"] == 1
    page.set_viewport_size({"width": 1280, "height": 720})
    overflow = page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    assert not overflow
    page.context.close()
    clean(log)


def test_the_record_appears_when_the_room_closes_and_names_no_anonymous_asker(
        browser: Any, site: LivehubProcess) -> None:
    record = f"{site.url}/record/record"
    with wire(site.ws_url, "record", token=token("moderator", "Chair", sub="rec-mod")) as mod, \
            wire(site.ws_url, "record", name="Secret Sam") as sam, \
            wire(site.ws_url, "record", name="Open Olive") as olive:
        assert httpx.get(record).status_code == 404
        sam.request({"t": "ask", "text": "Who audits the accounts?", "anonymous": True})
        olive.request({"t": "ask", "text": "When is the next meeting?"})
        sam.request({"t": "post", "text": "A post that a moderator removes"})
        pid = mod.request({"t": "poll", "question": "Was this useful?",
                           "options": ["Yes", "No"]})["pid"]
        olive.request({"t": "ballot", "pid": pid, "choices": [0]})
        removed = olive.request({"t": "post", "text": "REMOVED WORDS"})["mid"]
        mod.request({"t": "del", "mid": removed})
        mod.request({"t": "settings", "state": "closed"})
    page, log = open_page(browser, record)
    expect(page.get_by_role("heading", level=1)).to_have_text("For the record")
    main = page.locator("main")
    expect(main).to_contain_text("Who audits the accounts?")
    expect(main).to_contain_text("Asked anonymously")
    expect(main).to_contain_text("When is the next meeting?")
    expect(main).to_contain_text("Was this useful?")
    expect(main).to_contain_text("Yes: 1 vote")
    expect(main).to_contain_text("Eastmere District Council")
    text = main.inner_text()
    assert "REMOVED WORDS" not in text
    assert "Moderation" not in text
    q_item = page.locator("li", has_text="Who audits the accounts?")
    assert "Sam" not in q_item.inner_text()
    expect(page.get_by_role("heading", name=re.compile("^(Questions|Polls|Chat|Pinned posts)$"))
           ).to_have_count(4)
    page.goto(site.url + "/")
    link = page.get_by_role("link", name="Read the record of For the record")
    expect(link).to_be_visible()
    speakers = page.locator('[data-room="record"] .session__speakers')
    expect(speakers).to_have_text("With Cllr Rajesh Patel Eastmere District Council")
    expect(speakers.locator(".affiliation bdi")).to_have_text("Eastmere District Council")
    link.click()
    expect(page).to_have_url(record)
    page.context.close()
    clean(log)


def test_embed_is_framed_only_by_listed_origins(site: LivehubProcess) -> None:
    csp = httpx.get(f"{site.url}/embed/present").headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp  # none listed for this server
    assert "frame-ancestors 'none'" in httpx.get(f"{site.url}/present/present").headers[
        "content-security-policy"]


def test_badges_show_beside_names_and_never_for_guests(open_room: OpenRoom) -> None:
    cllr_token = mint(SECRET, name="Cllr Jo", role=Role.SPEAKER, sub="badge-jo",
                      affiliation="Eastmere District Council")
    cllr = open_room("polls", token=cllr_token)
    expect(cllr.page.locator("#me")).to_have_text(
        "You are Cllr Jo (Eastmere District Council), speaker.")
    guest = open_room("polls", guest="Eastmere District Council")
    cllr.send("Hello from the council")
    byline = guest.post("Hello from the council").locator(".byline")
    expect(byline.locator(".affiliation")).to_have_text("Eastmere District Council")
    expect(byline.locator(".badge--speaker")).to_have_text("Speaker")
    guest.send("Hello from a guest")
    own = cllr.post("Hello from a guest").locator(".byline")
    expect(own.locator(".badge--guest")).to_be_visible()
    expect(own.locator(".affiliation")).to_have_count(0)


def test_the_presentation_view_of_a_members_room_needs_a_sign_in_link(
        browser: Any, site: LivehubProcess) -> None:
    page, log = open_page(browser, f"{site.url}/present/members")
    expect(page.locator("#live-status")).to_contain_text("open this page with a sign-in link")
    member = token("participant", "Cllr Member", sub="present-member", rooms=["members"])
    page.goto("about:blank")  # a new load, not a jump within the page
    page.goto(f"{site.url}/present/members#token={member}")
    expect(page.locator("#live-status")).to_have_text("Live.")
    # That link is for one room: elsewhere the view watches as a guest would.
    page.goto(f"{site.url}/present/present")
    expect(page.locator("#live-status")).to_have_text("Live.")
    page.context.close()
    clean(log)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def host_site(directory: Path) -> Iterator[str]:
    """Another site (another origin: localhost and its own port) serving ``directory``."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(5)
        httpd.server_close()


def test_the_embed_shows_in_a_listed_sites_iframe_and_nowhere_else(
        browser: Any, tmp_path: Path) -> None:
    (tmp_path / "live.html").write_text("placeholder")
    with host_site(tmp_path) as council, host_site(tmp_path) as elsewhere:
        server = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(PROGRAMME),
                                     "LIVEHUB_EMBED_ORIGINS": council},
                                log_path=tmp_path / "livehub.log").start()
        try:
            (tmp_path / "live.html").write_text(
                '<!doctype html><html lang="en"><title>Council</title>'
                "<h1>Our live session</h1>"
                f'<iframe src="{server.url}/embed/chat" title="Live discussion" '
                'width="800" height="600"></iframe>')
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{council}/live.html")
            frame = page.frame_locator("iframe")
            expect(frame.locator("#live-status")).to_have_text("Live.")
            expect(frame.get_by_role("heading", level=1)).to_have_text("Open chat")
            page.goto(f"{elsewhere}/live.html")
            expect(page.get_by_role("heading", name="Our live session")).to_be_visible()
            page.wait_for_timeout(1000)
            embedded = [f for f in page.frames if f is not page.main_frame]
            assert embedded and not embedded[0].url.startswith(server.url)  # refused
            context.close()
        finally:
            server.terminate()
