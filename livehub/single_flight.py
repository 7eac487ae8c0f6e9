"""Share one call in flight among concurrent callers asking for the same thing.

A reconnect storm brings hundreds of joins to one room within milliseconds; each would
ask the broker for the room's online count and write its own. With a
:class:`SingleFlight` they share one round trip per room, so the broker's connection
pool stays free for commits (other rooms' posts do not queue behind the storm).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one call per key in flight; callers meanwhile share its outcome."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(call())
            self._inflight[key] = fut
            fut.add_done_callback(lambda f, key=key: self._forget(key, f))  # type: ignore[misc]
        # Shielded: one caller going away does not cancel the call the others wait for.
        return await asyncio.shield(fut)

    def _forget(self, key: K, fut: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        if not fut.cancelled():
            fut.exception()  # retrieved: a failure is raised to every caller, not logged
