"""Spread bursts of CPU-heavy steps over event-loop iterations.

A reconnect storm brings hundreds of joins that become ready together (they shared
one broker round trip); building every ``welcome`` in that one iteration would hold
the loop for hundreds of milliseconds, and every other room's events with it. A
:class:`Turns` lets in, per iteration, about as many steps as fit in ``budget``
seconds (from their average cost so far); the others wait, in order, for later
iterations, and the loop polls I/O in between.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Turns:
    """At most about ``budget`` seconds of gated steps per event-loop iteration."""

    def __init__(self, budget: float = 0.005) -> None:
        self.budget = budget
        self.used = 0.0
        self.cost = 0.0005  # moving average of one step, seconds
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    async def wait(self) -> None:
        """Return when this step may run (at once while the iteration has budget left)."""
        if self.used < self.budget and not self._waiters:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def spend(self, seconds: float) -> None:
        self.used += seconds
        self.cost += 0.1 * (seconds - self.cost)
        self._schedule()

    @staticmethod
    def clock() -> float:
        return time.perf_counter()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new iteration: fresh budget, and let in as many waiters as it pays for."""
        self._scheduled = False
        self.used = 0.0
        n = max(1, int(self.budget / max(self.cost, 1e-6)))
        while self._waiters and n > 0:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1
                self.used += self.cost  # spoken for: later arrivals this iteration wait
        if self._waiters:
            self._schedule()
