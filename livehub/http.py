"""HTTP routes: health, readiness, metrics and the programme API."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livehub import metrics
from livehub import room as core
from livehub.hub import Hub
from livehub.programme import Session

_SUMMARY_TTL = 2.0  # seconds a folded summary of a room served elsewhere is reused


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    hub = _hub(request)
    if hub.broker.ready and hub.accepting:
        return JSONResponse({"status": "ready", "broker": hub.broker.name})
    reason = "shutting down" if not hub.accepting else "broker unreachable"
    return JSONResponse({"status": "unavailable", "broker": hub.broker.name,
                         "reason": reason}, status_code=503)


async def metrics_endpoint(request: Request) -> Response:
    broker = _hub(request).broker
    metrics.BROKER_RECONNECTS.set(getattr(broker, "reconnects", 0))
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def session_wire(session: Session) -> dict[str, Any]:
    return {
        "id": session.slug,
        "title": session.title,
        "starts": session.starts.isoformat() if session.starts else None,
        "ends": session.ends.isoformat() if session.ends else None,
        "day": session.day.isoformat() if session.day else None,
        "speakers": list(session.speakers),
        # One per speaker: a badge such as "Eastmere District Council", or null.
        "affiliations": [session.affiliation(i) or None for i in range(len(session.speakers))],
        "description": session.description,
    }


async def _room_state(hub: Hub, session: Session, cache: dict[str, Any]) -> core.RoomState:
    """The room's state: the live replica here, else a short-lived fold of its log."""
    replica = hub.replicas.get(session.slug)
    if replica is not None and replica.ready.is_set():
        return replica.state
    hit = cache.get(session.slug)
    if hit is not None and time.monotonic() - hit[0] < _SUMMARY_TTL:
        state: core.RoomState = hit[1]
        return state
    state = core.RoomState(room=session.slug, title=session.title, settings=core.RoomSettings(
        slow_mode=session.slow_mode, guests=session.guests, premoderate=session.premoderate))
    history = await hub.broker.read(session.slug, 0)
    for ev in history.events:
        core.apply(state, ev)
    cache[session.slug] = (time.monotonic(), state)
    return state


async def api_rooms(request: Request) -> Response:
    hub = _hub(request)
    cache: dict[str, Any] = request.app.state.summary_cache
    online = await hub.online_all()
    rooms = []
    for session in hub.programme.sessions:
        state = await _room_state(hub, session, cache)
        rooms.append({**session_wire(session), "state": state.state_name,
                      "settings": state.settings.to_wire(),
                      "online": online.get(session.slug, 0)})
    return JSONResponse({"conference": {"title": hub.programme.title}, "rooms": rooms,
                         "sign_in": request.app.state.signin is not None})


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/rooms", api_rooms),
    ]
