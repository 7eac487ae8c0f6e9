"""The memory broker's side of :class:`~livehub.broker.base.Check`: the same rules the
Redis commit script applies, for one process. Bounded: a counter forgets what is older
than its window, and empty counters are dropped."""

from __future__ import annotations

from collections import deque

from livehub.broker.base import Check

# Sets of ``cap`` checks (guest votes per question and address) live as long as their
# room; their size is bounded by the cap itself.


class Counters:
    """Every budget of every room on this process, keyed by ``(room, key)``."""

    def __init__(self) -> None:
        self._rates: dict[tuple[str, str], deque[float]] = {}
        self._gaps: dict[tuple[str, str], float] = {}
        self._sets: dict[tuple[str, str], set[str]] = {}

    def _rate(self, room: str, key: str, now: float, window_ms: int) -> deque[float]:
        times = self._rates.get((room, key))
        if times is None:
            return deque()
        horizon = now - window_ms
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._rates[(room, key)]
        return times

    def refusal(self, room: str, checks: tuple[Check, ...], now: float
                ) -> tuple[Check, int] | None:
        """The first check that says no (and the retry time of a gap), or None."""
        for c in checks:
            if c.kind == "rate":
                if len(self._rate(room, c.key, now, c.window_ms)) >= c.limit:
                    return c, 0
            elif c.kind == "gap":
                last = self._gaps.get((room, c.key))
                if last is not None and now - last < c.window_ms:
                    return c, int(c.window_ms - (now - last))
            elif c.kind == "cap":
                members = self._sets.get((room, c.key), set())
                if c.member not in members and len(members) >= c.limit:
                    return c, 0
        return None

    def record(self, room: str, checks: tuple[Check, ...], now: float) -> None:
        for c in checks:
            k = (room, c.key)
            if c.kind == "rate":
                self._rates.setdefault(k, deque()).append(now)
            elif c.kind == "gap":
                self._gaps[k] = now
                self._sweep_gaps(now, c.window_ms)
            elif c.kind == "cap":
                self._sets.setdefault(k, set()).add(c.member)
            elif c.kind == "uncap":
                members = self._sets.get(k)
                if members is not None:
                    members.discard(c.member)
                    if not members:
                        del self._sets[k]

    def take(self, room: str, key: str, limit: int, window_ms: int, now: float) -> bool:
        if len(self._rate(room, key, now, window_ms)) >= limit:
            return False
        self._rates.setdefault((room, key), deque()).append(now)
        return True

    def _sweep_gaps(self, now: float, window_ms: int) -> None:
        # Slow-mode clocks older than the longest slow mode (a day) can go.
        if len(self._gaps) > 10_000:
            horizon = now - max(window_ms, 24 * 3600 * 1000)
            for k in [k for k, t in self._gaps.items() if t <= horizon]:
                del self._gaps[k]
