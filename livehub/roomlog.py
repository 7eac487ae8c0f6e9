"""A room's whole log, and a room's state built from its programme session.

The one reader of a whole log (a replica's load, transcripts, ``livehub export``, a
state folded for a room this process does not serve) and the one way to start a room's
state from its session: everything else reads bounded ranges (gap fills, ``since``).
"""

from __future__ import annotations

from typing import Final

from livehub import room as core
from livehub.broker.base import Broker, BrokerUnavailable, History
from livehub.programme import Session

LOG_PAGE: Final = 5000  # events per broker read when reading a whole log


def initial_state(session: Session, epoch: str = "") -> core.RoomState:
    """A room's state before its first event: the session's title and settings."""
    return core.RoomState(
        room=session.slug, title=session.title, epoch=epoch,
        settings=core.RoomSettings(slow_mode=session.slow_mode, guests=session.guests,
                                   premoderate=session.premoderate),
    )


def fold(session: Session, history: History) -> core.RoomState:
    """A room's state from its session and logged events."""
    state = initial_state(session, history.epoch)
    for ev in history.events:
        core.apply(state, ev)
    return state


async def read_all(broker: Broker, room: str, page: int = LOG_PAGE) -> History:
    """The room's whole log as one :class:`History`, read in pages.

    The events are those up to the head seen by the first read: what is committed
    meanwhile is left for the next reader (a replica gets it from pub/sub). Raises
    :class:`BrokerUnavailable`, also when the log keeps being reset while it is read.
    """
    for _ in range(3):
        first = await broker.read(room, 0, limit=page)
        head, events = first.head, list(first.events)
        complete, restarted = first.complete, False
        while events and events[-1]["seq"] < head:
            after = events[-1]["seq"]
            more = await broker.read(room, after, limit=page)
            if more.epoch != first.epoch:
                restarted = True  # the log was lost and started again while we read
                break
            if not more.events:
                break
            if more.events[0]["seq"] != after + 1:
                complete = False  # trimmed under us: a gap
            events.extend(more.events)
        if not restarted:
            return History(first.epoch, head, [ev for ev in events if ev["seq"] <= head],
                           complete)
    raise BrokerUnavailable("the room's log keeps being reset")
