"""Screenshots of polls, badges, the presentation view and the public record:
``python -m tests.browser.screenshots_polls``.

Starts livehub with the bundled sample conference, runs a panel session with
badges, questions and a poll, closes another session, and writes PNGs to
``docs/screenshots/``: the presentation view at 1920x1080, the poll in the room
at desktop (1280x800) and phone (375x812) width, and the record page.
"""

from __future__ import annotations

import contextlib
import sys

from playwright.sync_api import Page, expect, sync_playwright

from livehub.auth import mint
from livehub.roles import Role
from tests.browser import screenshots
from tests.browser.helpers import CHROMIUM, DESKTOP, LAUNCH_ARGS, PHONE, Wire, wire
from tests.support import SECRET, LivehubProcess, token

OUT = screenshots.OUT
ROOM = "day1-engaging-residents"
CLOSED = "day3-consultations"


def badge(role: str, name: str, affiliation: str, sub: str) -> str:
    return mint(SECRET, name=name, role=Role(role), sub=sub, affiliation=affiliation)


def run_panel(ws: str, stack: contextlib.ExitStack) -> tuple[Wire, str]:
    """A panel with badges, a question on stage and a poll people are voting in."""
    chair = stack.enter_context(wire(ws, ROOM, token=token("moderator", "Jo Lambert (chair)",
                                                           sub="chair")))
    patel = stack.enter_context(wire(ws, ROOM, token=badge(
        "speaker", "Cllr Rajesh Patel", "Eastmere District Council", "patel")))
    kearney = stack.enter_context(wire(ws, ROOM, token=badge(
        "participant", "Cllr Siobhan Kearney", "Northmoor County Council", "kearney")))
    mary = stack.enter_context(wire(ws, ROOM, name="Mary from Eastmere"))
    voters = [stack.enter_context(wire(ws, ROOM, name=n)) for n in ("Tom", "Priya", "Sam")]
    patel.request({"t": "post", "text": "Welcome, everyone: questions on the right."})
    kearney.request({"t": "post", "text": "Our ward forums moved online last year."})
    q1 = mary.request({"t": "ask", "text": "How do you stop online consultations being "
                                           "dominated by the same few voices?"})
    q2 = kearney.request({"t": "ask", "text": "Should councillors answer questions on "
                                             "Facebook in their own name?"})
    mary.request({"t": "ask", "text": "Can residents see how their comments changed "
                                      "a decision?", "anonymous": True})
    for client in (kearney, chair, *voters):
        client.request({"t": "vote", "qid": q1["qid"], "up": True})
    for client in voters[:2]:
        client.request({"t": "vote", "qid": q2["qid"], "up": True})
    patel.request({"t": "qstate", "qid": q1["qid"], "state": "answering"})
    patel.request({"t": "answer", "qid": q1["qid"],
                   "text": "We publish who took part, by ward and age, and go out to the "
                           "wards that are missing."})
    pid = patel.request({"t": "poll", "question": "Where should the next residents' "
                                                  "forum be held?",
                         "options": ["Online only", "In the town hall",
                                     "Both, streamed"]})["pid"]
    for client, choice in zip((kearney, mary, *voters), (2, 2, 0, 2, 1), strict=True):
        client.request({"t": "ballot", "pid": pid, "choices": [choice]})
    return patel, pid


def close_a_session(ws: str) -> None:
    with wire(ws, CLOSED, token=token("moderator", "Jo Lambert (chair)", sub="chair")) as mod, \
            wire(ws, CLOSED, token=badge("speaker", "Cllr Margaret Ellison",
                                         "Brackenford Borough Council", "ellison")) as cllr, \
            wire(ws, CLOSED, name="Resident Ann") as ann, \
            wire(ws, CLOSED, name="Resident Bob") as bob:
        notice = mod.request({"t": "post", "text": "The consultation closes on 30 April."})
        mod.request({"t": "pin", "mid": notice["mid"]})
        ann.request({"t": "post", "text": "Will the results be published?"})
        cllr.request({"t": "post", "text": "Yes, with every comment we received."})
        q = ann.request({"t": "ask", "text": "How long will the consultation run?"})
        bob.request({"t": "ask", "text": "Who reads the comments?", "anonymous": True})
        bob.request({"t": "vote", "qid": q["qid"], "up": True})
        cllr.request({"t": "qstate", "qid": q["qid"], "state": "answering"})
        cllr.request({"t": "answer", "qid": q["qid"], "text": "Six weeks, to 30 April."})
        pid = cllr.request({"t": "poll", "question": "Did you know the consultation was "
                                                     "open before today?",
                            "options": ["Yes", "No"]})["pid"]
        for client, choice in ((ann, 1), (bob, 0), (mod, 1)):
            client.request({"t": "ballot", "pid": pid, "choices": [choice]})
        cllr.request({"t": "pollstate", "pid": pid, "state": "closed"})
        mod.request({"t": "settings", "state": "closed"})


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    screenshots.shoot(page, name, full_page=full_page, settle_ms=500)  # the bars' transition


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    server = LivehubProcess().start()  # the bundled sample conference
    try:
        with contextlib.ExitStack() as people, sync_playwright() as p:
            run_panel(server.ws_url, people)
            close_a_session(server.ws_url)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            page = context.new_page()
            page.goto(f"{server.url}/present/{ROOM}")
            expect(page.locator(".live__answer-text")).to_be_visible()
            shoot(page, "present-1920.png")
            context.close()
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                page = context.new_page()
                page.goto(f"{server.url}/room/{ROOM}#token=" + badge(
                    "participant", "Cllr Anne Booth", "Ashworth City Council", f"ab-{label}"))
                expect(page.locator(".poll__fill")).to_have_count(3)
                page.locator("#polls").scroll_into_view_if_needed()
                shoot(page, f"poll-room-{label}.png")
                context.close()
            context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
            page = context.new_page()
            page.goto(f"{server.url}/record/{CLOSED}")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            shoot(page, "record-desktop.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
