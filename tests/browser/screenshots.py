"""Take the README's screenshots of the web client: ``python -m tests.browser.screenshots``.

Starts livehub with the bundled sample conference, fills one panel session with
a short, plausible discussion (posts, a reply, a pinned notice, questions with
votes, one on stage with an answer), and writes PNGs to ``docs/screenshots/``
at desktop (1280x800) and phone (375x812) sizes.
"""

from __future__ import annotations

import contextlib
import sys

from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.helpers import CHROMIUM, DESKTOP, LAUNCH_ARGS, PHONE, wire
from tests.support import REPO, LivehubProcess, token

OUT = REPO / "docs" / "screenshots"
ROOM = "day1-engaging-residents"


def fill_room(ws: str, stack: contextlib.ExitStack) -> None:
    """The discussion; its people stay connected so the online counts are not zero."""
    chair = token("moderator", "Jo Lambert (chair)", sub="chair")
    mod = stack.enter_context(wire(ws, ROOM, token=chair))
    speaker = stack.enter_context(wire(ws, ROOM, token=token("speaker", "Cllr Rajesh Patel")))
    mary = stack.enter_context(wire(ws, ROOM, name="Mary from Eastmere"))
    anne = stack.enter_context(wire(ws, ROOM, token=token("participant", "Cllr Anne Booth")))
    for name in ("Tom", "Priya", "Sam"):
        stack.enter_context(wire(ws, "day1-opening", name=name))

    notice = mod.request({"t": "post", "text": "Welcome! Slides and the recording will be "
                                               "on the conference page after the session."})
    mod.request({"t": "pin", "mid": notice["mid"]})
    first = mary.request({"t": "post", "text": "Our ward forum moved online last year and "
                                               "attendance doubled."})
    anne.request({"t": "post", "text": "Did older residents keep coming?",
                  "reply_to": first["mid"]})
    mary.request({"t": "post", "text": "Mostly, once the library ran help sessions.",
                  "reply_to": first["mid"]})
    speaker.request({"t": "post", "text": "That matches what we saw in Eastmere."})
    q1 = mary.request({"t": "ask", "text": "How do you stop online consultations being "
                                           "dominated by the same few voices?"})
    q2 = anne.request({"t": "ask", "text": "Should councillors answer questions on "
                                           "Facebook in their own name?"})
    mary.request({"t": "ask", "text": "Can residents see how their comments changed "
                                      "a decision?", "anonymous": True})
    for client in (anne, speaker, mod):
        client.request({"t": "vote", "qid": q1["qid"], "up": True})
    mary.request({"t": "vote", "qid": q2["qid"], "up": True})
    speaker.request({"t": "qstate", "qid": q1["qid"], "state": "answering"})
    speaker.request({"t": "answer", "qid": q1["qid"],
                     "text": "We publish who took part, by ward and age, and go out to "
                             "the wards that are missing."})


def shoot(page: Page, name: str, *, full_page: bool = False, settle_ms: int = 300) -> None:
    page.wait_for_timeout(settle_ms)  # let the last redraw (and any transition) settle
    path = OUT / name
    page.screenshot(path=str(path), full_page=full_page)
    print(path.relative_to(REPO))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    server = LivehubProcess().start()  # the bundled sample conference
    try:
        with contextlib.ExitStack() as people, sync_playwright() as p:
            fill_room(server.ws_url, people)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                page = context.new_page()
                page.goto(server.url + "/")
                expect(page.locator(".session").first).to_be_visible()
                shoot(page, f"programme-{label}.png")
                page.goto(f"{server.url}/room/{ROOM}#token="
                          + token("participant", "Cllr Siobhan Kearney", sub=f"sk-{label}"))
                expect(page.locator("#stage .answer")).to_be_visible()
                shoot(page, f"room-{label}.png")
                context.close()
            context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
            page = context.new_page()
            page.goto(f"{server.url}/room/{ROOM}#token="
                      + token("moderator", "Jo Lambert (chair)", sub="chair"))
            expect(page.locator("#controls")).to_be_visible()
            shoot(page, "room-moderator-desktop.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
