"""The room page survives: a server restart, a lost acknowledgement, a burst of posts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import WebSocketRoute, expect

from tests.browser.conftest import OpenRoom
from tests.browser.helpers import PROGRAMME, PageLog, RoomPage, wire
from tests.support import LivehubProcess, free_port, token

RECONNECT = 20_000  # ms: backoff with jitter after a restart that takes a second or two


def test_page_reconnects_after_a_server_restart_and_shows_what_was_posted_meanwhile(
        open_room: OpenRoom, tmp_path: Path) -> None:
    env = {"LIVEHUB_PROGRAMME": str(PROGRAMME)}
    port = free_port()
    first = LivehubProcess(port=port, env=env, log_path=tmp_path / "first.log").start()
    second: LivehubProcess | None = None
    try:
        ann = open_room("chat", base=first.url, token=token("participant", "Cllr Ann", sub="ann"))
        ann.send("before the restart")
        expect(ann.post("before the restart")).to_be_visible()

        first.terminate()
        banner = ann.page.locator("#connection-text")
        expect(banner).to_contain_text("You are offline")
        # Written while offline: it waits, marked, and goes once the server is back.
        ann.send("written while offline")
        expect(ann.page.locator(".post--sending")).to_contain_text("Waiting to send")

        second = LivehubProcess(port=port, env=env, log_path=tmp_path / "second.log").start()
        with wire(second.ws_url, "chat", token=token("participant", "Cllr Bob")) as bob:
            assert bob.request({"t": "post", "text": "posted meanwhile"})["t"] == "ok"

        expect(ann.post("posted meanwhile")).to_be_visible(timeout=RECONNECT)
        expect(ann.post("written while offline")).to_be_visible()
        expect(ann.page.locator(".post--sending")).to_have_count(0)
        expect(banner).to_have_text("You are back online.")
        # The new server lost the old log (in-memory broker): the page rebuilt
        # its view from the welcome rather than keeping posts the room no longer has.
        expect(ann.page.get_by_text("before the restart")).to_have_count(0)
        with wire(second.ws_url, "chat", token=token("participant", "Cllr Cy")) as cy:
            texts = [m["text"] for m in cy.welcome["history"]]
        assert texts.count("written while offline") == 1
    finally:
        first.kill()
        if second is not None:
            second.terminate()
    # Chromium logs the refused connection attempts; nothing else may be reported.
    assert all("WebSocket connection" in line for line in ann.log.console), ann.log.console
    ann.log.console.clear()


def test_a_post_whose_answer_was_lost_is_resent_with_its_id_and_not_doubled(
        browser: Any, site: LivehubProcess) -> None:
    """The link dies after the server took a post but before its ``ok`` arrived."""
    context = browser.new_context()
    page = context.new_page()
    log = PageLog()
    log.watch(page)
    sockets: list[list[dict[str, Any]]] = []  # per socket, the posts the page sent

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        sent: list[dict[str, Any]] = []
        sockets.append(sent)
        first = len(sockets) == 1

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["t"] == "post":
                sent.append(frame)
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if first and isinstance(message, str) and '"t":"ok"' in message and '"mid"' in message:
                server.close()
                ws.close(code=1011, reason="link lost")  # the ok never reaches the page
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/resend$"), route)
    page.goto(f"{site.url}/room/resend#token={token('participant', 'Cllr Dee', sub='dee')}")
    room = RoomPage(page, log)
    room.send("only once, please")
    expect(room.post("only once, please")).to_be_visible()
    expect(page.get_by_text("You are back online.")).to_be_visible(timeout=RECONNECT)
    expect(page.locator(".post--sending")).to_have_count(0)
    expect(page.get_by_text("only once, please", exact=True)).to_have_count(1)

    assert len(sockets) == 2
    assert sockets[0][0]["id"] == sockets[1][0]["id"]  # the same id: an idempotency key
    with wire(site.ws_url, "resend", name="Checker") as w:
        texts = [m["text"] for m in w.welcome["history"]]
    assert texts.count("only once, please") == 1
    context.close()
    assert log.errors == [] and log.dialogs == []


def test_new_messages_are_announced_politely_in_batches(open_room: OpenRoom,
                                                         site: LivehubProcess) -> None:
    ann = open_room("chat", guest="Ann")
    region = ann.page.locator("#announcer")
    expect(region).to_have_attribute("aria-live", "polite")
    ann.page.evaluate("""() => {
        window.announcements = [];
        new MutationObserver(() => window.announcements.push(
            document.getElementById('announcer').textContent))
          .observe(document.getElementById('announcer'), {childList: true, characterData: true,
                                                          subtree: true});
    }""")
    with wire(site.ws_url, "chat", name="Bob") as bob:
        for i in range(1, 9):
            bob.request({"t": "post", "text": f"burst {i}"})
    expect(ann.post("burst 8")).to_be_visible()
    expect(region).to_have_text(re.compile(r"new messages\. Latest from Bob: burst 8$"))
    said = ann.page.evaluate("window.announcements")
    assert len(said) <= 2, said  # eight posts, one or two announcements

    # Someone who finds it too much can turn it off.
    ann.page.get_by_label("Announce new messages").uncheck()
    ann.page.evaluate("window.announcements = []")
    with wire(site.ws_url, "chat", name="Bob") as bob:
        bob.request({"t": "post", "text": "quietly"})
    expect(ann.post("quietly")).to_be_visible()
    ann.page.wait_for_timeout(2000)
    assert ann.page.evaluate("window.announcements") == []


def test_coalesced_frames_are_read_event_by_event(browser: Any, site: LivehubProcess) -> None:
    """Several events in one text frame, one JSON object per line (as under load)."""
    context = browser.new_context()
    page = context.new_page()
    held: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(message))

        def from_server(message: str | bytes) -> None:
            if isinstance(message, str) and '"t":"msg"' in message:
                held.append(message)
                if len(held) == 3:
                    ws.send("\n".join(held))  # three posts, one frame
                return
            ws.send(message)

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/keyboard$"), route)
    page.goto(f"{site.url}/room/keyboard#token={token('participant', 'Cllr Eve')}")
    room = RoomPage(page, PageLog())
    expect(page.locator("#me")).not_to_be_empty()
    with wire(site.ws_url, "keyboard", name="Bob") as bob:
        for text in ("one", "two", "three"):
            bob.request({"t": "post", "text": f"coalesced {text}"})
    for text in ("one", "two", "three"):
        expect(room.post(f"coalesced {text}")).to_be_visible()
    context.close()
