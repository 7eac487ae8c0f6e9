"""A room's summary: what the programme page shows of a room, kept beside its log.

Every commit folds its events into a small record (state, settings, counts, last
``seq``) stored next to the log (Redis: a hash written by the commit script; memory:
a dict), so ``GET /api/rooms`` and the pages read one small key per room, never a log.
Brokers call :func:`delta` on the events they commit; they need not know what the
events mean, only how to apply a :class:`Delta` (set these fields, add to those).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delta:
    """Fields to set and counters to add to, for one commit."""

    set: dict[str, str] = field(default_factory=dict)
    add: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.set or self.add)


def delta(events: list[Event]) -> Delta:
    """What ``events`` change in their room's summary.

    ``posts`` counts posts ever published (announcements included, removed ones too);
    ``questions`` counts questions ever shown to participants (asked straight into the
    room, or approved out of pre-moderation), so no count tells of pending ones.
    """
    sets: dict[str, str] = {}
    add: dict[str, int] = {}
    for ev in events:
        t = ev.get("t")
        if t == "msg":
            add["posts"] = add.get("posts", 0) + 1
        elif t == "q" and ev.get("state") != "pending":
            add["questions"] = add.get("questions", 0) + 1
        elif t == "qstate" and ev.get("prev") == "pending" and ev.get("state") != "pending":
            add["questions"] = add.get("questions", 0) + 1
        elif t == "room":
            sets["state"] = str(ev.get("state", "open"))
            sets["settings"] = json.dumps(ev.get("settings", {}), sort_keys=True)
        if "ts" in ev:
            sets["ts"] = str(int(ev["ts"]))  # when the room last changed
    return Delta(sets, add)


def apply(record: dict[str, str], d: Delta) -> None:
    """Fold ``d`` into a stored record (the memory broker's; Redis does it in Lua)."""
    record.update(d.set)
    for key, n in d.add.items():
        record[key] = str(int(record.get(key, "0")) + n)


@dataclass(frozen=True, slots=True)
class Summary:
    """A room's summary as read back; ``state``/``settings`` None: never changed in the
    room (the programme's apply)."""

    seq: int = 0
    posts: int = 0
    questions: int = 0
    state: str | None = None
    settings: dict[str, Any] | None = None
    ts: int | None = None


def parse(record: dict[str, str]) -> Summary:
    """A stored record (string fields) as a :class:`Summary`; bad fields are ignored."""
    def num(key: str) -> int:
        try:
            return int(record.get(key, "0"))
        except ValueError:
            return 0
    settings: dict[str, Any] | None = None
    if "settings" in record:
        try:
            loaded = json.loads(record["settings"])
            settings = loaded if isinstance(loaded, dict) else None
        except ValueError:
            settings = None
    return Summary(seq=num("seq"), posts=num("posts"), questions=num("questions"),
                   state=record.get("state"), settings=settings,
                   ts=num("ts") if "ts" in record else None)
