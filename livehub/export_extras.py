"""Reports and reactions in transcripts: counted, never attributed.

The Markdown minutes list reports as counts with reasons per item, without
reporters' names or notes, and show each post's reaction counts on its line.
CSV and JSON keep every event as logged, except that a person's ``react`` is
given as the post's ``reactions`` counts after it: no transcript says who
reacted. Pure functions over logged events, like :mod:`livehub.export`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from livehub.moderation import EMOJI

Event = dict[str, Any]


class Reactions:
    """Reactor sets per post and emoji, folded from ``react`` events."""

    def __init__(self) -> None:
        self.by_post: dict[str, dict[str, set[str]]] = {}

    def fold(self, ev: Event) -> dict[str, int]:
        """Apply one ``react`` event; the post's counts after it."""
        mid = str(ev.get("mid"))
        reactors = self.by_post.setdefault(mid, {}).setdefault(str(ev.get("emoji")), set())
        if ev.get("on", True):
            reactors.add(str(ev.get("uid")))
        else:
            reactors.discard(str(ev.get("uid")))
        return self.counts(mid)

    def counts(self, mid: str) -> dict[str, int]:
        by_emoji = self.by_post.get(mid, {})
        return {e: len(by_emoji[e]) for e in EMOJI if by_emoji.get(e)}

    def suffix(self, mid: str) -> str:
        """`` [thumbs_up 3, heart 1]`` for a post's line (empty when none)."""
        c = self.counts(mid)
        return " [" + ", ".join(f"{e} {n}" for e, n in c.items()) + "]" if c else ""


def public_events(events: Iterable[Event]) -> list[Event]:
    """The log for CSV and JSON: each ``react`` as an unattributed ``reactions`` event."""
    tally = Reactions()
    out: list[Event] = []
    for ev in events:
        if ev.get("t") == "react":
            out.append({"t": "reactions", "seq": ev.get("seq"), "ts": ev.get("ts"),
                        "mid": ev.get("mid"), "counts": tally.fold(ev)})
        else:
            out.append(ev)
    return out


@dataclass(slots=True)
class _Item:
    kind: str  # "post" or "question"
    ts: int | None  # when the item was made, when known
    reasons: list[str] = field(default_factory=list)
    reporters: set[str] = field(default_factory=set)
    open: set[str] = field(default_factory=set)
    removed: bool = False


class Reports:
    """Reports per item, folded from ``report``, ``resolved`` and ``del`` events."""

    def __init__(self) -> None:
        self.items: dict[str, _Item] = {}
        self.rids: dict[str, str] = {}  # rid -> item

    def on_report(self, ev: Event, item_ts: int | None) -> None:
        kind = "post" if "mid" in ev else "question"
        key = str(ev.get("mid") if "mid" in ev else ev.get("qid"))
        item = self.items.setdefault(key, _Item(kind, item_ts))
        uid = str(ev.get("uid"))
        if uid in item.reporters:
            return  # the same person's repeat (a race): folded as nothing, as in the room
        item.reporters.add(uid)
        item.reasons.append(str(ev.get("reason")))
        item.open.add(str(ev.get("rid")))
        self.rids[str(ev.get("rid"))] = key

    def on_resolved(self, ev: Event) -> None:
        key = self.rids.get(str(ev.get("rid")))
        if key is not None:
            self.items[key].open.discard(str(ev.get("rid")))

    def on_del(self, ev: Event) -> None:
        item = self.items.get(str(ev.get("mid") if "mid" in ev else ev.get("qid")))
        if item is not None:
            item.removed = True

    def lines(self, clock: Callable[[int], str]) -> list[str]:
        """One line per reported item: counts and reasons, never who reported or why."""
        out = []
        for item in self.items.values():
            n = len(item.reasons)
            reasons = ", ".join(dict.fromkeys(item.reasons))
            state = "open" if item.open else "resolved"
            which = [f"the {item.kind} from {clock(item.ts)}"] if item.ts is not None else []
            if item.removed:
                which.append("since removed")
            detail = f" ({', '.join(which)})" if which else ""
            out.append(f"{n} report{'s' if n != 1 else ''} ({reasons}) on a {item.kind}: "
                       f"{state}{detail}.")
        return out
