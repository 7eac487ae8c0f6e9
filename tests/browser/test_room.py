"""The live room in a real browser: chat, questions, speakers and moderators."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import PHONE, wire
from tests.support import LivehubProcess, token


def test_two_pages_see_each_others_posts_and_replies_thread(open_room: OpenRoom) -> None:
    ann = open_room("chat", guest="Ann")
    bob = open_room("chat", guest="Bob")
    expect(bob.page.locator("#online")).to_have_text("2 people online.")

    ann.send("Good morning from Eastmere")
    post = bob.post("Good morning from Eastmere")
    expect(post).to_be_visible()
    expect(post.locator(".byline")).to_contain_text("Ann")
    expect(post.locator(".badge--guest")).to_have_text("Guest")

    # Bob replies; the reply sits under Ann's post on both pages.
    bob.button("Reply", post).click()
    expect(bob.page.locator("#replying")).to_contain_text("Replying to Ann")
    expect(bob.page.get_by_label("Message", exact=True)).to_be_focused()
    bob.page.keyboard.type("Morning Ann, from Northmoor")
    bob.page.keyboard.press("Enter")
    for page in (ann, bob):
        thread = page.post_item("Good morning from Eastmere")
        reply = thread.locator(".replies").get_by_text("Morning Ann, from Northmoor")
        expect(reply).to_be_visible()
    expect(bob.page.locator("#replying")).to_be_hidden()
    # Nothing is doubled by the local "Sending…" copy.
    expect(ann.page.get_by_text("Morning Ann, from Northmoor", exact=True)).to_have_count(1)
    expect(bob.page.get_by_text("Morning Ann, from Northmoor", exact=True)).to_have_count(1)


def test_question_voted_up_and_put_on_stage_by_a_speaker(open_room: OpenRoom) -> None:
    ann = open_room("qa", guest="Ann")
    bob = open_room("qa", token=token("participant", "Cllr Bob"))
    speaker = open_room("qa", token=token("speaker", "Dr Helen Marsh"))

    ann.ask("Will the webcast be archived?")
    ann.ask("Who pays for the broadband?", anonymous=True)
    first = bob.question("Will the webcast be archived?")
    expect(first).to_be_visible()
    anonymous = bob.question("Who pays for the broadband?")
    expect(anonymous.locator(".byline")).to_have_text(re.compile(r"^Asked anonymously"))
    expect(anonymous).not_to_contain_text("Ann")

    # Bob votes the second question up: it moves to the top everywhere.
    vote = bob.button("Vote", anonymous)
    vote.click()
    expect(vote).to_have_attribute("aria-pressed", "true")
    for page in (ann, bob, speaker):
        votes = page.question("Who pays for the broadband?").locator(".question__votes")
        expect(votes).to_have_text("1")
        expect(page.page.locator("#questions .question__text").first).to_have_text(
            "Who pays for the broadband?")
    expect(vote).to_be_focused()  # the focus followed the button as its question moved

    # Participants have no speaker controls; the speaker has them.
    expect(bob.button("Put on stage")).to_have_count(0)
    speaker.button("Put on stage", speaker.question("Who pays for the broadband?")).click()
    for page in (ann, bob, speaker):
        expect(page.stage.get_by_text("Who pays for the broadband?", exact=True)).to_be_visible()
        expect(page.page.locator("#questions")).not_to_contain_text("Who pays for the broadband?")

    # The speaker answers in text; everyone sees the answer under the question on stage.
    on_stage = speaker.stage.locator(".question")
    on_stage.get_by_text("Answer in text").click()
    on_stage.get_by_label("Your answer").fill("The county council, from its capital budget.")
    on_stage.get_by_role("button", name="Send answer").click()
    for page in (ann, bob):
        answer = page.stage.locator(".answer")
        expect(answer).to_contain_text("The county council, from its capital budget.")
        expect(page.stage.locator(".answer")).to_contain_text("Dr Helen Marsh")

    # Putting another question on stage moves the first one off.
    speaker.button("Put on stage", speaker.question("Will the webcast be archived?")).click()
    expect(ann.stage).to_contain_text("Will the webcast be archived?")
    expect(ann.page.locator("#questions-panel")).not_to_contain_text("Who pays for the broadband?")
    speaker.button("Mark answered", speaker.stage).click()
    expect(ann.stage).to_contain_text("No question is on stage.")


def test_moderator_pins_deletes_mutes_and_bans(open_room: OpenRoom) -> None:
    ann = open_room("moderation", guest="Ann")
    mod = open_room("moderation", token=token("moderator", "Cllr Mod"))
    ann.send("Please pin the agenda link")
    ann.send("Something regrettable")
    expect(mod.post("Something regrettable")).to_be_visible()

    mod.menu_action("Pin", mod.post("Please pin the agenda link"))
    expect(ann.pinned).to_be_visible()
    expect(ann.pinned.get_by_text("Please pin the agenda link")).to_be_visible()
    expect(ann.button("Pin")).to_have_count(0)  # participants do not pin

    mod.menu_action("Delete", mod.post("Something regrettable"))
    expect(ann.page.get_by_text("Something regrettable")).to_have_count(0)
    # (in the chat: the screen-reader announcer may still be reading the post out)
    expect(mod.post("Something regrettable")).to_have_count(0)

    mod.button("Unpin", mod.pinned).click()
    expect(ann.pinned).to_be_hidden()

    # Mute for 5 minutes: Ann is told until when, and her next post is refused.
    target = mod.post("Please pin the agenda link")
    mod.menu_action("Mute Ann for 5 minutes", target)
    expect(ann.page.locator("#mute-notice")).to_contain_text("You are muted until")
    expect(mod.page.locator("#muted-list")).to_contain_text("Ann")
    ann.send("Can I still talk?")
    expect(ann.page.locator("#message-error")).to_have_text("You are muted, so this was not sent.")
    expect(ann.page.get_by_label("Message", exact=True)).to_have_value("Can I still talk?")
    mod.button("Unmute Ann", mod.page.locator("#muted-list")).click()
    expect(ann.page.locator("#mute-notice")).to_be_hidden()

    # A ban asks first; cancelling changes nothing, confirming removes Ann.
    mod.menu_action("Ban Ann", mod.post("Please pin the agenda link"))
    dialog = mod.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Ann will be disconnected")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(ann.page.locator("#room")).to_be_visible()
    mod.menu_action("Ban Ann", mod.post("Please pin the agenda link"))
    dialog.get_by_role("button", name="Ban", exact=True).click()
    removed = ann.page.get_by_role("heading", name="You cannot take part in this session")
    expect(removed).to_be_visible()
    expect(ann.page.locator("#room")).to_be_hidden()
    banned = mod.page.locator("#banned-list")
    expect(banned).to_contain_text("Ann")
    mod.button("Unban Ann", banned).click()
    expect(banned.locator("li")).to_have_count(0)


def test_premoderated_question_waits_for_approval(open_room: OpenRoom) -> None:
    ann = open_room("premod", guest="Ann")
    mod = open_room("premod", token=token("moderator", "Cllr Mod"))
    expect(ann.page.locator("#premod-hint")).to_contain_text("A moderator checks each question")
    ann.ask("Is the library closing?")
    expect(ann.page.locator("#question-status")).to_contain_text("once a moderator approves it")
    pending = mod.page.locator("#pending").get_by_text("Is the library closing?")
    expect(pending).to_be_visible()
    expect(ann.page.get_by_text("Is the library closing?")).to_have_count(0)
    mod.button("Approve", mod.question("Is the library closing?")).click()
    expect(ann.question("Is the library closing?")).to_be_visible()
    expect(mod.page.locator("#pending")).to_be_hidden()


def test_moderator_closes_the_room_and_sets_slow_mode(open_room: OpenRoom) -> None:
    ann = open_room("controls", guest="Ann")
    mod = open_room("controls", token=token("moderator", "Cllr Mod"))
    expect(ann.page.locator("#controls")).to_be_hidden()
    mod.page.get_by_label("Slow mode").select_option(label="30 seconds")
    mod.button("Save settings").click()
    expect(ann.page.locator("#slow-hint")).to_contain_text("one message every 30 seconds")
    ann.send("first")
    expect(ann.post("first")).to_be_visible()
    ann.send("second")
    expect(ann.page.locator("#message-error")).to_contain_text("Slow mode: wait")

    mod.button("Close the room").click()
    expect(ann.page.locator("#room-state")).to_have_text("Closed")
    expect(ann.page.locator("#closed-notice")).to_be_visible()
    expect(ann.page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
    expect(mod.page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    mod.button("Open the room").click()
    expect(ann.page.get_by_role("button", name="Send", exact=True)).to_be_enabled()


def test_user_text_is_text_and_never_runs(open_room: OpenRoom, site: LivehubProcess) -> None:
    attack = "<img src=x onerror=alert(1)>"
    ann = open_room("xss", guest=attack)  # the name too
    bob = open_room("xss", token=token("moderator", "Cllr Mod"))
    ann.send(attack)
    ann.ask(f"<script>alert(2)</script>{attack}")
    with wire(site.ws_url, "xss", name="<b>bold</b>") as w:
        w.request({"t": "post", "text": '<a href="javascript:alert(3)">click</a>'})
    for page in (ann, bob):
        expect(page.post(attack)).to_be_visible()
        expect(page.post(attack).locator(".byline__name")).to_have_text(attack)
        for text in (f"<script>alert(2)</script>{attack}",
                     '<a href="javascript:alert(3)">click</a>'):
            expect(page.page.get_by_text(text, exact=True)).to_be_visible()
        expect(page.page.locator(".byline__name", has_text="<b>bold</b>")).to_be_visible()
        markup = page.page.locator("main img, main script, main b, main a[href^=javascript]")
        expect(markup).to_have_count(0)
    bob.page.wait_for_timeout(300)  # give any handler a chance to fire
    # The open_room fixture fails the test on any dialog, script error or CSP report.


def test_keyboard_only(open_room: OpenRoom) -> None:
    ann = open_room("keyboard", token=token("participant", "Cllr Ann"))
    page = ann.page
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Enter")
    expect(ann.post("Typed without a mouse")).to_be_visible()
    # Shift+Enter is a new line, not a send.
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(page.get_by_label("Message", exact=True)).to_have_value("line one\nline two")
    page.keyboard.press("Enter")
    expect(ann.post("line one\nline two")).to_be_visible()

    # Tab reaches the question box, the anonymous choice and Ask, in that order.
    page.get_by_label("Your question").focus()
    page.keyboard.type("Asked by keyboard")
    page.keyboard.press("Tab")
    expect(page.get_by_label("ask anonymously")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Ask", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    question = ann.question("Asked by keyboard")
    expect(question).to_be_visible()
    vote = ann.button("Vote", question)
    vote.focus()
    page.keyboard.press("Enter")
    expect(vote).to_have_attribute("aria-pressed", "true")
    # Focus is visible: the focused control (kept through the list's redraw) is drawn
    # with an outline.
    page.wait_for_function(
        "() => document.activeElement && document.activeElement !== document.body"
        " && getComputedStyle(document.activeElement).outlineStyle === 'solid'",
        timeout=5000)


def test_narrow_phone_screen_has_no_sideways_scroll(open_room: OpenRoom) -> None:
    ann = open_room("chat", guest="Ann", viewport={"width": 320, "height": 640})
    ann.send("A long word: " + "x" * 120)
    expect(ann.post("A long word: " + "x" * 120)).to_be_visible()
    width = ann.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320
    phone = open_room("chat", token=token("moderator", "Cllr Mod"), viewport=PHONE)
    # 200% zoom of a 1280 px window is a 640 px layout: still one column, no sideways scroll.
    phone.page.set_viewport_size({"width": 640, "height": 400})
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 640
    expect(phone.page.get_by_label("Message", exact=True)).to_be_visible()
