"""Read-only pages: the presentation view, the embed, and the public record.

* ``/present/{room}``: for a projector or a stream. No controls; it joins as a
  watcher (``static/js/live-view.js``), the question on stage in the largest type.
* ``/embed/{room}``: a compact read-only live view for an ``<iframe>`` on a
  council's own site. Only origins in ``LIVEHUB_EMBED_ORIGINS`` may frame it
  (CSP ``frame-ancestors``, set in :mod:`livehub.pages`); every other page
  keeps ``frame-ancestors 'none'``.
* ``/record/{room}``: a closed session's public record (:mod:`livehub.record`),
  404 while the room is open. Records are rendered one at a time and reused while
  the log has not grown, so that a crowd reading a record costs one log read and
  one render, not one each.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from html import escape
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livehub import export, metrics
from livehub.api import fold, read_room_log
from livehub.broker.base import BrokerUnavailable
from livehub.hub import Hub, RoomReplica
from livehub.pages import _masthead, _page, not_found_html
from livehub.programme import SLUG_RE, Session
from livehub.record import record_body

RECORD_TTL: Final = 10.0  # seconds a record of a room not served here is reused


def present_html(conference: str, title: str, slug: str) -> str:
    t = escape(title)
    body = f"""<main id="main" class="live live--present" data-room="{escape(slug)}"
 data-mode="present">
<h1 id="room-title" class="live__title">{t}</h1>
<p id="live-status" class="live__status" role="status">Connecting…</p>
<section class="live__stage" aria-labelledby="stage-heading">
<h2 id="stage-heading" class="live__label">On stage now</h2>
<div id="live-stage"><p class="empty">No question is on stage.</p></div>
</section>
<div class="live__columns">
<section class="live__queue" aria-labelledby="queue-heading">
<h2 id="queue-heading" class="live__label">Next questions</h2>
<p id="live-queue-empty" class="empty">No questions waiting.</p>
<ol id="live-queue" class="live__questions"></ol>
</section>
<section id="live-poll-section" class="live__poll" aria-labelledby="poll-heading" hidden>
<h2 id="poll-heading" class="live__label">Poll</h2>
<div id="live-poll"></div>
</section>
</div>
</main>"""
    return _page(f"{t}: presentation", body, script="live-view.js",
                 body_class="page-live page-present")


def embed_html(conference: str, title: str, slug: str) -> str:
    t, s = escape(title), escape(slug)
    body = f"""<main id="main" class="live live--embed" data-room="{s}" data-mode="embed">
<h1 id="room-title" class="live__title">{t}</h1>
<p><a href="/room/{s}" target="_blank" rel="noopener">Join the discussion on
{escape(conference)}</a></p>
<p id="live-status" class="live__status" role="status">Connecting…</p>
<section class="live__stage" aria-labelledby="stage-heading">
<h2 id="stage-heading" class="live__label">On stage now</h2>
<div id="live-stage"><p class="empty">No question is on stage.</p></div>
</section>
<section id="live-poll-section" class="live__poll" aria-labelledby="poll-heading" hidden>
<h2 id="poll-heading" class="live__label">Poll</h2>
<div id="live-poll"></div>
</section>
<section class="live__queue" aria-labelledby="queue-heading">
<h2 id="queue-heading" class="live__label">Questions by votes</h2>
<p id="live-queue-empty" class="empty">No questions waiting.</p>
<ol id="live-queue" class="live__questions"></ol>
</section>
<section class="live__chat" aria-labelledby="chat-heading">
<h2 id="chat-heading" class="live__label">Latest messages</h2>
<p id="live-chat-empty" class="empty">No messages yet.</p>
<ol id="live-chat" class="posts"></ol>
</section>
</main>"""
    return _page(f"{t}: live", body, script="live-view.js", body_class="page-live page-embed")


def record_html(conference: str, session: Session, body: str) -> str:
    c = escape(conference)
    page = f"""<a class="skip-link" href="#main">Skip to the record</a>
{_masthead(c, link_home=True)}
<main id="main" class="wrap record" tabindex="-1">
<nav class="breadcrumbs" aria-label="Breadcrumb"><a href="/">Programme</a></nav>
{body}
</main>"""
    return _page(f"Record: {escape(session.title)}: {c}", page, script=None,
                 body_class="page-record")


def not_yet_html(conference: str, session: Session) -> str:
    c, t = escape(conference), escape(session.title)
    body = f"""{_masthead(c, link_home=True)}
<main id="main" class="wrap">
<h1>No record yet: {t}</h1>
<p>The record of this session appears here once its room has closed.</p>
<p><a href="/room/{escape(session.slug)}">Go to the live room</a> or
<a href="/">see the programme</a>.</p>
</main>"""
    return _page(f"No record yet: {t}", body, script=None, body_class="page-error")


# --- routes ----------------------------------------------------------------------


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _session(request: Request) -> Session | None:
    slug: str = request.path_params["room"]
    return _hub(request).session(slug) if SLUG_RE.fullmatch(slug) else None


def _missing(request: Request) -> Response:
    hub = _hub(request)
    return HTMLResponse(not_found_html(hub.programme.title, request.path_params["room"][:64]),
                        status_code=404)


async def present_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _missing(request)
    return HTMLResponse(present_html(_hub(request).programme.title, session.title,
                                     session.slug))


async def embed_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _missing(request)
    return HTMLResponse(embed_html(_hub(request).programme.title, session.title,
                                   session.slug))


@dataclass(frozen=True, slots=True)
class _Record:
    made: float  # time.monotonic() when rendered
    epoch: str
    seq: int  # the last event it includes
    html: str


@dataclass(slots=True)
class _Records:
    """Rendered records by room (bounded by the programme's sessions). Rendering a long
    record takes a while (about a second for 5,000 events), so one is made at a time,
    and reused while the room's log has not grown (known without I/O when this process
    serves the room), else for ``RECORD_TTL`` seconds."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pages: dict[str, _Record] = field(default_factory=dict)

    def fresh(self, room: str, replica: RoomReplica | None) -> _Record | None:
        hit = self.pages.get(room)
        if hit is None:
            return None
        if replica is not None and replica.ready.is_set():
            same = (hit.epoch, hit.seq) == (replica.state.epoch, replica.state.seq)
            return hit if same else None
        return hit if time.monotonic() - hit.made <= RECORD_TTL else None


def _records(request: Request) -> _Records:
    records: _Records | None = getattr(request.app.state, "records", None)
    if records is None:
        records = request.app.state.records = _Records()
    return records


async def record_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _missing(request)
    hub = _hub(request)
    conference = hub.programme.title
    replica = hub.replicas.get(session.slug)
    if replica is not None and replica.ready.is_set() and replica.state.open:
        return HTMLResponse(not_yet_html(conference, session), status_code=404)
    records = _records(request)
    hit = records.fresh(session.slug, replica)
    if hit is None:
        async with records.lock:
            hit = records.fresh(session.slug, replica)  # made while we waited?
            if hit is None:
                try:
                    history = await read_room_log(hub.broker, session.slug)
                except BrokerUnavailable:
                    metrics.BROKER_ERRORS.labels("read").inc()
                    return JSONResponse({"error": "unavailable", "message":
                                         "the server cannot reach its broker; retry"},
                                        status_code=503, headers={"Retry-After": "5"})
                if fold(session, history).open:
                    records.pages.pop(session.slug, None)
                    return HTMLResponse(not_yet_html(conference, session), status_code=404)
                log = export.RoomLog(room=session.slug, events=history.events,
                                     epoch=history.epoch, complete=history.complete,
                                     session=session, conference=conference)
                body = await run_in_threadpool(record_body, log)
                seq = history.events[-1]["seq"] if history.events else 0
                hit = _Record(time.monotonic(), history.epoch, seq,
                              record_html(conference, session, body))
                records.pages[session.slug] = hit
    return HTMLResponse(hit.html)


def routes() -> list[BaseRoute]:
    return [
        Route("/present/{room}", present_page),
        Route("/embed/{room}", embed_page),
        Route("/record/{room}", record_page),
    ]
