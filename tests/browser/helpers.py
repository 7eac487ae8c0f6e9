"""Browser test helpers: a room page driven like a person would, a small
synchronous protocol client, and the axe-core accessibility check."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page, expect
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROGRAMME = Path(__file__).with_name("programme.toml")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@dataclass
class PageLog:
    """What a page said that a person would not see: script errors, console, dialogs."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(msg.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


class RoomPage:
    """A live room in one browser context, with the controls named as on screen."""

    def __init__(self, page: Page, log: PageLog) -> None:
        self.page = page
        self.log = log

    # --- finding things -------------------------------------------------------------

    def post(self, text: str) -> Locator:
        """The post (its own body, not its replies) whose text is exactly ``text``."""
        return self.page.locator("#messages article.post__body").filter(
            has=self.page.get_by_text(text, exact=True))

    def post_item(self, text: str) -> Locator:
        """The list item of that post, replies included."""
        own_body = self.page.locator(":scope > article.post__body").filter(
            has=self.page.get_by_text(text, exact=True))
        return self.page.locator("#messages li.post").filter(has=own_body)

    def question(self, text: str) -> Locator:
        return self.page.locator("#questions-panel .question").filter(
            has=self.page.get_by_text(text, exact=True))

    @property
    def stage(self) -> Locator:
        return self.page.locator("#stage")

    @property
    def pinned(self) -> Locator:
        return self.page.locator("#pinned")

    def button(self, name: str, within: Locator | None = None) -> Locator:
        scope = within if within is not None else self.page
        return scope.get_by_role("button", name=name)

    def menu_action(self, name: str, within: Locator) -> None:
        """Open the "Actions" menu inside ``within`` and choose the item ``name``."""
        within.get_by_role("button", name="Actions").click()
        within.get_by_role("menuitem", name=name).click()

    # --- doing things --------------------------------------------------------------

    def send(self, text: str) -> None:
        self.page.get_by_label("Message", exact=True).fill(text)
        self.page.get_by_role("button", name="Send", exact=True).click()

    def ask(self, text: str, *, anonymous: bool = False) -> None:
        self.page.get_by_label("Your question").fill(text)
        if anonymous:
            self.page.get_by_label("ask anonymously").check()
        self.page.get_by_role("button", name="Ask", exact=True).click()


class Wire:
    """A plain protocol client (JSON subprotocol) to post or look from outside the browser."""

    def __init__(self, ws: ClientConnection, **hello: Any) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []
        self.ids = 0
        self.ws.send(json.dumps({"t": "hello", **hello}))
        self.welcome = self.until(lambda f: f["t"] == "welcome")

    def _read(self, timeout: float) -> None:
        data = self.ws.recv(timeout=timeout)
        assert isinstance(data, str)
        self.pending.extend(json.loads(line) for line in data.split("\n") if line)

    def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0
              ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                if pred(frame):
                    return frame
            self._read(max(0.01, deadline - time.monotonic()))

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        rid = f"w{self.ids}"
        self.ws.send(json.dumps({**frame, "id": rid}))
        return self.until(lambda f: f.get("id") == rid and f["t"] in ("ok", "error"))


@contextlib.contextmanager
def wire(ws_base: str, room: str, **hello: Any) -> Iterator[Wire]:
    """A signed-in protocol client for the length of a ``with`` block."""
    with connect(f"{ws_base}/ws/{room}", subprotocols=["livehub.v1.json"],  # type: ignore[list-item]
                 open_timeout=5) as ws:
        yield Wire(ws, **hello)


def axe_source() -> str:
    """axe-core as shipped by the axe-playwright-python package (no copy of ours)."""
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def axe_violations(page: Page, source: str) -> list[str]:
    """WCAG 2.1 A and AA violations on the page, one readable line per node.

    axe goes in through page.evaluate (the DevTools protocol), which the page's
    Content-Security-Policy does not govern: the policy under test stays on.
    """
    page.evaluate(source)
    result = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))",
        WCAG_AA)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {node}"
            for v in result for node in v["nodes"]]


def new_room_page(browser: Browser, base: str, room: str, *, token: str | None = None,
                  guest: str | None = None, viewport: dict[str, int] | None = None
                  ) -> RoomPage:
    """A fresh browser context (its own sessionStorage) signed in to ``room``."""
    context = browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
    page = context.new_page()
    log = PageLog()
    log.watch(page)
    url = f"{base}/room/{room}" + (f"#token={token}" if token else "")
    page.goto(url)
    if guest is not None:
        page.get_by_label("Your name").fill(guest)
        page.get_by_role("button", name="Join").click()
    expect(page.locator("#room")).to_be_visible()
    expect(page.locator("#me")).not_to_be_empty()
    return RoomPage(page, log)


def exact(text: str) -> re.Pattern[str]:
    return re.compile(f"^{re.escape(text)}$")
