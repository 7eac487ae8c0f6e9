"""HTTP routes: health, readiness, metrics and the programme API."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livehub import metrics
from livehub.broker.base import BrokerUnavailable
from livehub.hub import Hub
from livehub.programme import Session
from livehub.room_status import room_status
from livehub.single_flight import SingleFlight


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


_ROOMS_FRESH: Final = 1.0  # seconds one /api/rooms answer serves every poller
_ROOMS_KEY: Final = "api_rooms"


async def api_rooms(request: Request) -> Response:
    """The programme with each room's state, settings, counts and ``online``.

    Reads one small summary record per room (pipelined, :mod:`livehub.summary`) and the
    online counts, never a room's log; 503 with a JSON message while the broker is away.
    Every page polls this: one answer serves all requests for ``_ROOMS_FRESH`` s at
    most, and only while nobody came to or left a room of this process (other processes'
    changes show within that second); a request in its second half refreshes it in the
    background (so under steady polling nobody waits for the broker), and concurrent
    refreshes share one round trip.
    """
    state = request.app.state
    hub = _hub(request)
    cache: dict[str, Any] = state.summary_cache
    hit = cache.get(_ROOMS_KEY)
    age = time.monotonic() - hit[0] if hit is not None else float("inf")
    if (hit is not None and age < _ROOMS_FRESH and hub.broker.ready
            and hit[2] == hub.changes):  # nobody came or went here meanwhile
        if age >= _ROOMS_FRESH / 2 and not getattr(state, "rooms_refreshing", False):
            state.rooms_refreshing = True
            hub.tasks.spawn(_refresh_rooms(state, hub), name="rooms-refresh")
        return Response(hit[1], media_type="application/json")
    try:  # none yet, over a second old, or the broker seems away: ask the broker now
        body = await _rooms_answer(state, hub)
    except BrokerUnavailable as exc:
        metrics.BROKER_ERRORS.labels("summaries").inc()
        return JSONResponse({"error": "unavailable",
                             "message": f"the server cannot reach its broker ({exc}); retry"},
                            status_code=503, headers={"Retry-After": "5"})
    return Response(body, media_type="application/json")


async def _rooms_answer(state: Any, hub: Hub) -> bytes:
    flight: SingleFlight[str, bytes] | None = getattr(state, "rooms_flight", None)
    if flight is None:
        flight = state.rooms_flight = SingleFlight()
    sign_in = getattr(state, "signin", None) is not None
    changes = hub.changes
    body = await flight.run(_ROOMS_KEY, partial(_rooms_body, hub, sign_in))
    state.summary_cache[_ROOMS_KEY] = (time.monotonic(), body, changes)
    return body


async def _refresh_rooms(state: Any, hub: Hub) -> None:
    try:
        await _rooms_answer(state, hub)
    except BrokerUnavailable:
        metrics.BROKER_ERRORS.labels("summaries").inc()  # the next request answers 503
    finally:
        state.rooms_refreshing = False


async def _rooms_body(hub: Hub, sign_in: bool) -> bytes:
    sessions = hub.programme.sessions
    records, online = await asyncio.gather(
        hub.broker.summaries([s.slug for s in sessions]), hub.online_all())
    rooms = [{**session_wire(session), **room_status(hub, session, records.get(session.slug)),
              "online": online.get(session.slug, 0)}
             for session in sessions]
    return bytes(JSONResponse({"conference": {"title": hub.programme.title},
                               "rooms": rooms, "sign_in": sign_in}).body)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/rooms", api_rooms),
    ]
