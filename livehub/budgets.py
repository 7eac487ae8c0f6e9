"""Fair limits: which shared budgets a request must fit, decided where it is committed.

Pure: given who asks, the events their request would commit and the room's settings,
the :class:`~livehub.broker.base.Check` list the broker applies atomically with the
commit (see docs/protocol.md, "Fair limits"):

* one person, one budget: a person's requests that publish in a room, on every
  connection and process, share ``rate_limit`` per ``rate_window``;
* slow mode: one clock per person in the room (speakers and moderators exempt);
* guests per client address: their requests that publish share
  ``guest_address_rate`` per 10 s, and at most ``guest_votes_per_address`` of the
  guest votes on one question, and of the guest ballots in one poll, come from one
  address (a withdrawn vote frees its place; a changed ballot keeps its own).

A refusal changes nothing and counts toward none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from livehub.broker.base import Check
from livehub.roles import SLOW_MODE_EXEMPT
from livehub.room import Actor, Event, RoomSettings

GUEST_ADDRESS_WINDOW_MS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    rate_limit: int = 20  # 0: off
    rate_window_ms: int = 10_000
    guest_address_rate: int = 120  # 0: off
    guest_votes_per_address: int = 50  # 0: off


def checks_for(actor: Actor, events: list[Event], settings: RoomSettings,
               limits: Limits) -> tuple[Check, ...]:
    """The checks that committing ``events`` on ``actor``'s behalf must pass."""
    if not events:
        return ()
    checks: list[Check] = []
    if limits.rate_limit:
        checks.append(Check("rate", f"person:{actor.uid}", limits.rate_limit,
                            limits.rate_window_ms, label="person"))
    addr = actor.addr if actor.guest else None
    if addr is not None and limits.guest_address_rate:
        checks.append(Check("rate", f"gaddr:{addr}", limits.guest_address_rate,
                            GUEST_ADDRESS_WINDOW_MS, label="guest_address"))
    first = events[0]
    kind = first["t"]
    if kind == "msg" and settings.slow_mode and actor.role not in SLOW_MODE_EXEMPT:
        checks.append(Check("gap", f"slow:{actor.uid}", window_ms=settings.slow_mode * 1000,
                            code="slow_mode", label="slow_mode"))
    if kind == "vote" and addr is not None and limits.guest_votes_per_address:
        key = f"gvotes:{first['qid']}:{addr}"
        if first["up"]:
            checks.append(Check("cap", key, limits.guest_votes_per_address,
                                member=actor.uid, label="guest_votes"))
        else:
            checks.append(Check("uncap", key, member=actor.uid, label="guest_votes"))
    if kind == "ballot" and addr is not None and limits.guest_votes_per_address:
        # A guest's first ballot in a poll takes a place; changing it later does not.
        checks.append(Check("cap", f"gballots:{first['pid']}:{addr}",
                            limits.guest_votes_per_address, member=actor.uid,
                            label="guest_ballots"))
    return tuple(checks)
