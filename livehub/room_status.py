"""A room's status for the programme (``GET /api/rooms``): its summary, or the replica.

A room loaded in this process answers from its replica (the freshest); any other from
its summary record (:mod:`livehub.summary`); a room never changed from the programme.
"""

from __future__ import annotations

from typing import Any

from livehub import summary
from livehub.hub import Hub
from livehub.programme import Session


def room_status(hub: Hub, session: Session, record: dict[str, str] | None) -> dict[str, Any]:
    """``state``, ``settings`` and ``counts`` of ``session``'s room."""
    got = summary.parse(record or {})
    settings: dict[str, Any] = {"slow_mode": session.slow_mode, "guests": session.guests,
                                "premoderate": session.premoderate}
    settings.update(got.settings or {})
    state = got.state or "open"
    replica = hub.replicas.get(session.slug)
    if replica is not None and replica.ready.is_set():
        state, settings = replica.state.state_name, replica.state.settings.to_wire()
    return {"state": state, "settings": settings,
            "counts": {"posts": got.posts, "questions": got.questions}}
