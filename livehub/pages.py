"""The web client's pages: the programme at ``/``, a room at ``/room/{room}``, ``/static``.

The HTML here is only a shell with headings, landmarks and labelled controls;
the scripts in ``static/js`` fill it in from ``/api/rooms`` and the room's
WebSocket. Every page and static file is served with a strict
Content-Security-Policy: scripts and styles only from this origin, nothing
inline, so user text that slipped into the DOM as markup still could not run.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livehub.hub import Hub
from livehub.programme import SLUG_RE

# From a checkout the client is the repository's static/; an installed wheel carries
# it as livehub/static (see pyproject.toml).
_CHECKOUT_STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_DIR = (_CHECKOUT_STATIC if _CHECKOUT_STATIC.is_dir()
              else Path(__file__).resolve().parent / "static")

# A Host header is client-controlled: only a plain host[:port] goes into the CSP.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def content_security_policy(host: str | None, frame_ancestors: str = "'none'") -> str:
    """The pages' CSP; ``connect-src`` names the WebSocket origins explicitly
    because older browsers do not let ``'self'`` cover ``ws:``/``wss:``. Only the
    embed view lets other sites frame it (``frame_ancestors``)."""
    connect = "'self'"
    if host and _HOST_RE.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            f"connect-src {connect}; img-src 'self' data:; font-src 'self'; "
            f"object-src 'none'; frame-ancestors {frame_ancestors}; base-uri 'none'; "
            "form-action 'self'")


def _is_page_path(path: str) -> bool:
    return path == "/" or path.startswith(("/room/", "/static/", "/present/", "/embed/",
                                           "/record/"))


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to pages and static files.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so WebSockets and streamed
    responses pass through untouched.
    """

    def __init__(self, app: ASGIApp, embed_origins: list[str] | None = None) -> None:
        self.app = app
        self.embed_ancestors = " ".join(embed_origins or []) or "'none'"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if _is_page_path(path) or headers.get("content-type", "").startswith(
                        "text/html"):
                    ancestors = (self.embed_ancestors if path.startswith("/embed/")
                                 else "'none'")
                    headers["Content-Security-Policy"] = content_security_policy(host,
                                                                                 ancestors)
                    headers["X-Content-Type-Options"] = "nosniff"
                    headers["Referrer-Policy"] = "no-referrer"
                    headers["Cross-Origin-Opener-Policy"] = "same-origin"
                    headers.setdefault("Cache-Control", "no-cache")
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- the HTML shells -------------------------------------------------------------


def _page(title: str, body: str, *, script: str | None, body_class: str) -> str:
    module = f'<script type="module" src="/static/js/{script}"></script>' if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/livehub.css">
{module}
</head>
<body class="{body_class}">
{body}
</body>
</html>
"""


def _masthead(conference: str, *, link_home: bool) -> str:
    name = (f'<a class="masthead__name" href="/">{conference}</a>' if link_home
            else f'<span class="masthead__name">{conference}</span>')
    return f'<header class="masthead"><div class="wrap">{name}</div></header>'


def programme_html(conference: str) -> str:
    c = escape(conference)
    body = f"""<a class="skip-link" href="#main">Skip to the programme</a>
{_masthead(c, link_home=False)}
<main id="main" class="wrap" tabindex="-1">
<h1>{c}: programme</h1>
<p class="lede">Choose a session to join its live discussion. Times are UK time.</p>
<p id="programme-status" class="status" role="status">Loading the programme…</p>
<div id="programme"></div>
<noscript><p class="notice">The programme and live rooms need JavaScript.</p></noscript>
</main>"""
    return _page(f"Programme: {c}", body, script="programme.js", body_class="page-programme")


def room_html(conference: str, title: str, slug: str) -> str:
    c, t = escape(conference), escape(title)
    body = f"""<a class="skip-link" id="skip-link" href="#message">Skip to the message box</a>
{_masthead(c, link_home=True)}
<div id="connection" class="connection" data-state="idle">
<p id="connection-text" role="status"></p>
<button type="button" id="reconnect" class="button button--small" hidden>Reconnect now</button>
</div>
<main id="main" class="wrap" data-room="{escape(slug)}">
<nav class="breadcrumbs" aria-label="Breadcrumb"><a href="/">Programme</a></nav>
<h1 id="room-title">{t}</h1>
<p class="room-meta"><span id="room-state" class="badge">Connecting…</span>
<span id="online"></span> <span id="me" class="me"></span>
<a id="present-link" href="/present/{escape(slug)}" hidden>Presentation view</a></p>
<p id="signin-offer" class="signin-offer" hidden><a class="button"
 href="/auth/login?next=/room/{escape(slug)}">Sign in</a> with your organisation's
account, if you work for the organisers.</p>
<noscript><p class="notice">This live room needs JavaScript.</p></noscript>
<nav id="jump" class="jump" aria-label="On this page" hidden>
<a href="#chat-heading">Chat</a> <a href="#qa-heading">Questions</a>
<a href="#controls-heading" id="jump-controls" hidden>Room controls</a>
</nav>

<section id="join" class="panel join" aria-labelledby="join-heading" hidden>
<h2 id="join-heading">Join this session</h2>
<form id="join-form" class="stack" novalidate>
<label for="guest-name">Your name</label>
<p class="hint" id="guest-name-hint">Shown next to what you write. You join as a guest.</p>
<input id="guest-name" name="name" type="text" maxlength="50" autocomplete="name"
 aria-describedby="guest-name-hint guest-name-error" required>
<p id="guest-name-error" class="error" role="alert"></p>
<button type="submit" class="button button--primary">Join</button>
</form>
</section>
<section id="signin-needed" class="panel" aria-labelledby="signin-heading" hidden>
<h2 id="signin-heading">Sign-in needed</h2>
<p id="signin-text">This session is for signed-in participants. Open the sign-in link
you were sent by the organisers.</p>
</section>

<div id="room" class="room" hidden>
<div id="notices" class="notices">
<p id="closed-notice" class="notice" hidden>This room is closed: you can read but not
post or ask.</p>
<p id="mute-notice" class="notice notice--warning" hidden></p>
</div>

<div class="room__columns">
<section class="chat panel" aria-labelledby="chat-heading">
<div class="panel__head">
<h2 id="chat-heading">Chat</h2>
<label class="check check--small"><input id="announce" type="checkbox" checked>
Announce new messages</label>
</div>
<section id="pinned" class="pinned" aria-labelledby="pinned-heading" hidden>
<h3 id="pinned-heading">Pinned</h3>
<ul id="pinned-list" class="posts posts--pinned"></ul>
</section>
<div id="messages-scroll" class="messages" tabindex="0" role="region" aria-label="Messages">
<p id="messages-empty" class="empty">No messages yet.</p>
<ol id="messages" class="posts"></ol>
</div>
<form id="post-form" class="composer" novalidate>
<p id="replying" class="replying" hidden><span id="replying-text"></span>
<button type="button" id="cancel-reply" class="button button--link">Cancel reply</button></p>
<label for="message">Message</label>
<p class="hint" id="message-hint">Enter sends; Shift+Enter starts a new line.<span
 id="slow-hint"></span></p>
<div class="composer__row">
<textarea id="message" name="text" rows="2" maxlength="2000"
 aria-describedby="message-hint message-error"></textarea>
<button type="submit" class="button button--primary" id="send">Send</button>
</div>
<p id="message-error" class="error" role="alert"></p>
<p id="message-status" class="status" role="status"></p>
<p id="report-status" class="status" role="status"></p>
</form>
</section>

<section id="questions-panel" class="qa panel" aria-labelledby="qa-heading">
<h2 id="qa-heading">Questions</h2>
<section id="stage" class="stage" aria-labelledby="stage-heading">
<h3 id="stage-heading">On stage now</h3>
<div id="stage-body"><p class="empty">No question is on stage.</p></div>
</section>
<section id="polls" class="polls" aria-labelledby="polls-heading" hidden>
<h3 id="polls-heading">Polls</h3>
<p id="polls-empty" class="empty">No polls yet.</p>
<div id="polls-list"></div>
<form id="poll-form" class="poll-new stack composer" novalidate hidden>
<h4 id="poll-new-heading">New poll</h4>
<label for="poll-question">Poll question</label>
<input id="poll-question" type="text" maxlength="300" autocomplete="off"
 aria-describedby="poll-error">
<fieldset id="poll-options-set"><legend class="visually-hidden">Options</legend>
<div id="poll-options" class="stack"></div></fieldset>
<p><button type="button" id="poll-add-option" class="button button--small">Add option</button></p>
<label class="check"><input id="poll-multi" type="checkbox"> Allow several answers</label>
<button type="submit" class="button button--primary">Open poll</button>
<p id="poll-error" class="error" role="alert"></p>
<p id="poll-status" class="status" role="status"></p>
</form>
</section>
<form id="ask-form" class="composer" novalidate>
<label for="question">Your question</label>
<p class="hint" id="question-hint">The speakers see the questions with the most votes
first.<span id="premod-hint"></span></p>
<textarea id="question" name="text" rows="2" maxlength="2000"
 aria-describedby="question-hint question-error"></textarea>
<div class="composer__row composer__row--spread">
<label class="check"><input id="anonymous" type="checkbox"> ask anonymously</label>
<button type="submit" class="button button--primary">Ask</button>
</div>
<p id="question-error" class="error" role="alert"></p>
<p id="question-status" class="status" role="status"></p>
</form>
<section id="pending" aria-labelledby="pending-heading" hidden>
<h3 id="pending-heading">Awaiting approval</h3>
<ol id="pending-list" class="questions"></ol>
</section>
<h3 id="queue-heading">Questions by votes</h3>
<p id="questions-empty" class="empty">No questions yet.</p>
<ol id="questions" class="questions" aria-labelledby="queue-heading"></ol>
</section>
</div>

<section id="controls" class="controls panel" aria-labelledby="controls-heading" hidden>
<h2 id="controls-heading">Room controls</h2>
<p>The room is <strong id="controls-state">open</strong>.
<button type="button" id="toggle-room" class="button">Close the room</button></p>
<form id="settings-form" class="stack">
<label for="slow-mode">Slow mode</label>
<select id="slow-mode" name="slow_mode">
<option value="0">Off</option><option value="5">5 seconds</option>
<option value="10">10 seconds</option><option value="30">30 seconds</option>
<option value="60">1 minute</option><option value="300">5 minutes</option>
</select>
<label class="check"><input id="premoderate" type="checkbox"> Questions wait for
approval</label>
<label class="check"><input id="guests" type="checkbox"> Guests may join</label>
<button type="submit" class="button">Save settings</button>
</form>
<p id="controls-error" class="error" role="alert"></p>
<h3>Muted people</h3>
<p id="muted-empty" class="empty">Nobody is muted.</p>
<ul id="muted-list" class="muted-list"></ul>
<h3>Banned people</h3>
<p id="banned-empty" class="empty">Nobody has been banned while this page was open.</p>
<ul id="banned-list" class="muted-list"></ul>
</section>
<section id="moderation" class="controls panel" aria-labelledby="reports-heading" hidden>
<h2 id="reports-heading">Reports (<span id="reports-count">0</span>)</h2>
<p id="reports-empty" class="empty">No open reports.</p>
<ul id="reports-list" class="muted-list"></ul>
<h2 id="held-heading">Held posts (<span id="held-count">0</span>)</h2>
<p class="hint">Posts with words on the organisers' hold list wait here until you
release or delete them.</p>
<p id="held-empty" class="empty">No posts are waiting.</p>
<ul id="held-list" class="muted-list" aria-labelledby="held-heading"></ul>
</section>
</div>
</main>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>
<dialog id="ban-dialog" aria-labelledby="ban-heading" aria-describedby="ban-text">
<form method="dialog" class="stack">
<h2 id="ban-heading">Ban from this room?</h2>
<p id="ban-text"></p>
<div class="actions">
<button value="ban" class="button button--danger">Ban</button>
<button value="cancel" class="button" autofocus>Cancel</button>
</div>
</form>
</dialog>
<dialog id="report-dialog" aria-labelledby="report-heading" aria-describedby="report-about">
<form method="dialog" id="report-form" class="stack">
<h2 id="report-heading">Report to the moderators</h2>
<p id="report-about"></p>
<fieldset>
<legend>Reason</legend>
<label class="check"><input type="radio" name="reason" value="abuse" checked> Abuse</label>
<label class="check"><input type="radio" name="reason" value="spam"> Spam</label>
<label class="check"><input type="radio" name="reason" value="off_topic"> Off topic</label>
<label class="check"><input type="radio" name="reason" value="other"> Other</label>
</fieldset>
<label for="report-note">Note (optional)</label>
<textarea id="report-note" rows="3" maxlength="300"></textarea>
<p id="report-error" class="error" role="alert"></p>
<div class="actions">
<button value="send" class="button button--primary">Send report</button>
<button value="cancel" class="button">Cancel</button>
</div>
</form>
</dialog>"""
    return _page(f"{t}: {c}", body, script="room.js", body_class="page-room")


def not_found_html(conference: str, what: str) -> str:
    c = escape(conference)
    body = f"""{_masthead(c, link_home=True)}
<main id="main" class="wrap">
<h1>Session not found</h1>
<p>There is no session called “{escape(what)}”. The link may be mistyped, or the
session may have been removed from the programme.</p>
<p><a href="/">See the programme</a></p>
</main>"""
    return _page(f"Session not found: {c}", body, script=None, body_class="page-error")


# --- routes ----------------------------------------------------------------------


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def index(request: Request) -> Response:
    return HTMLResponse(programme_html(_hub(request).programme.title))


async def room_page(request: Request) -> Response:
    hub = _hub(request)
    slug: str = request.path_params["room"]
    session = hub.session(slug) if SLUG_RE.fullmatch(slug) else None
    if session is None:
        return HTMLResponse(not_found_html(hub.programme.title, slug[:64]), status_code=404)
    return HTMLResponse(room_html(hub.programme.title, session.title, session.slug))


def routes() -> list[BaseRoute]:
    return [
        Route("/", index),
        Route("/room/{room}", room_page),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False),
              name="static"),
    ]


def middleware(embed_origins: list[str] | None = None) -> list[Middleware]:
    return [Middleware(SecurityHeaders, embed_origins=embed_origins)]
