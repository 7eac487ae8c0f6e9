"""An owner for background tasks: nothing is created and dropped.

A :class:`Supervisor` keeps a reference to every task it started (so none is
garbage-collected mid-flight), logs each one that fails, restarts those that must
keep running (with backoff), and cancels and awaits them all at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger("livehub.supervisor")


class Supervisor:
    """Background tasks of one owner (a hub), awaited by :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0
        self.closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as an owned task; a failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("background task failed", task=task.get_name(), exc_info=exc)

    def keep_running(self, factory: Callable[[], Coroutine[Any, Any, None]], *, name: str,
                     backoff: float = 0.5, cap: float = 10.0) -> asyncio.Task[Any]:
        """Run ``factory()`` and start it again whenever it ends or fails (until closed)."""
        async def run() -> None:
            delay = backoff
            while not self.closing:
                try:
                    await factory()
                    delay = backoff
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.failures += 1
                    log.exception("background task failed; restarting", task=name,
                                  delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)
        return self.spawn(run(), name=name)

    async def close(self, within: float = 5.0) -> None:
        """Cancel every task and wait for them (cancelling again any that goes on)."""
        self.closing = True
        pending = set(self.tasks)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while pending and loop.time() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        if pending:
            log.error("background tasks did not stop", tasks=[t.get_name() for t in pending])
