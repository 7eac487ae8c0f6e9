"""The HTML pages: the programme at ``/`` and a room at ``/room/{room}``."""

from __future__ import annotations

from html import escape

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from livehub.hub import Hub


async def index(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    items = []
    for day, sessions in hub.programme.days():
        items.append(f"<h2>{escape(day.strftime('%A %d %B %Y') if day else 'Unscheduled')}</h2>")
        items.append("<ul>")
        for s in sessions:
            when = s.starts.strftime("%H:%M") if s.starts else ""
            items.append(f'<li>{escape(when)} <a href="/room/{escape(s.slug)}">'
                         f"{escape(s.title)}</a></li>")
        items.append("</ul>")
    title = escape(hub.programme.title)
    return HTMLResponse(f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                        f"<title>{title}</title></head><body><h1>{title}</h1>"
                        f"{''.join(items)}</body></html>")


def routes() -> list[BaseRoute]:
    return [Route("/", index)]


def middleware() -> list[Middleware]:
    return []
